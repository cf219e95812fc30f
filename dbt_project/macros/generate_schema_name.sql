{#
  Schemas are a contract: models land in exactly `staging`, `marts`, `audiences` or `ops`,
  never `<target_schema>_marts` as dbt's default would name them.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
