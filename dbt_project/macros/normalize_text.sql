{#- Trimmed, lower-cased text for case- and whitespace-insensitive matching (NULL and '' become NULL). -#}
{% macro normalize_text(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}
