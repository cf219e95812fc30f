{#-
  The raw event tables the signups ingestion asset appends to (`marketing_pipelines/signups/tables.py` holds the
  same columns; a test keeps them equal). Created empty by `on-run-start`, so the staging views build before the
  first file lands.
-#}
{% macro signup_event_columns() -%}
    event_id varchar,
    occurred_at timestamp,
    email varchar,
    user_id bigint,
    namespace_id bigint,
    company varchar,
    company_namespace boolean,
    country varchar,
    employee_bucket varchar,
    first_name varchar,
    last_name varchar,
    latest_trial_start_date date,
    signup_reason varchar,
    state varchar,
    user_role varchar,
    setup_for_company boolean,
    source_file varchar,
    line_number bigint,
    loaded_at timestamp
{%- endmacro %}

{% macro create_signup_event_table(table) -%}
    create table if not exists raw.{{ table }} ({{ signup_event_columns() }})
{%- endmacro %}
