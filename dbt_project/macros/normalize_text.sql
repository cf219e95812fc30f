{#- Trimmed, lower-cased text for case- and whitespace-insensitive matching (NULL and '' become NULL). -#}
{% macro normalize_text(column) -%}
    nullif(lower({{ trim_whitespace(column) }}), '')
{%- endmacro %}

{#- `column` without surrounding whitespace of any kind: spaces, tabs, CR, LF, vertical tab, form feed and no-break
    space (plain `trim` strips only spaces on DuckDB and Snowflake, so a CRLF export would never match). -#}
{% macro trim_whitespace(column) -%}
    trim({{ column }}, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13) || chr(160))
{%- endmacro %}
