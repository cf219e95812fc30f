{#-
  The raw event tables the signups ingestion asset appends to. Their columns are defined once, in the `signups`
  source (`models/staging/signups/_signups__sources.yml`: name, data_type, config.meta); the ingestion reads the
  same file. Created empty by `on-run-start`, so the staging views build before the first file lands.
-#}
{% macro signup_event_columns() -%}
    {#- The source's columns in their order (name, data_type, meta); none while dbt parses. -#}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set event_source = graph.sources['source.' ~ project_name ~ '.signups.trial_signup_events'] -%}
    {{ return(event_source.columns.values() | list) }}
{%- endmacro %}

{% macro create_signup_event_table(table) -%}
    {%- if execute -%}
    create table if not exists raw.{{ table }} (
        {%- for column in signup_event_columns() %}
        {{ column.name }} {{ column.data_type }}{{ "," if not loop.last }}
        {%- endfor %}
    )
    {%- endif -%}
{%- endmacro %}
