{#- Trimmed, lower-cased text for case- and whitespace-insensitive matching (NULL and '' become NULL). -#}
{% macro normalize_text(column) -%}
    nullif(lower(trim({{ column }})), '')
{%- endmacro %}

{#- A label's matching key: lower-cased with every space removed, so ` mql `, `Bad  data` and `bad data` meet
    (NULL and '' become NULL). A raw value maps to a canonical label only when exactly one label has its key. -#}
{% macro label_match_key(column) -%}
    nullif(replace(lower(trim({{ column }})), ' ', ''), '')
{%- endmacro %}
