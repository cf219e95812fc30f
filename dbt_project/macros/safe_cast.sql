{#- dbt-duckdb has no `safe_cast` of its own (dbt's default is a plain `cast`, which fails on bad text):
    `try_cast` returns NULL instead, as dbt-snowflake's `try_cast` does for text input. -#}
{% macro duckdb__safe_cast(field, type) -%}
    try_cast({{ field }} as {{ type }})
{%- endmacro %}
