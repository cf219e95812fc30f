{#-
  The staging shape shared by both landed event tables (`stg_signups__trial_signup_events`,
  `stg_signups__free_registration_events`): each column of the `signups` source (`signup_event_columns`) cast to
  its type, the e-mail normalized, `company_namespace` renamed `is_company_namespace` (`setup_for_company` is stored,
  never used, and not staged), plus the event's kind (its landing folder) and `event_key` (`<kind>:<event_id>`):
  event ids are unique per kind only, so a trial signup and a free registration may share one and stay two events.
-#}
{% macro stg_signup_events(table, kind) %}
{%- set staged_names = {'company_namespace': 'is_company_namespace'} -%}
{%- set not_staged = ['setup_for_company'] -%}
with source as (
    select * from {{ source('signups', table) }}
),

renamed as (
    select
        {{ dbt.concat(["'" ~ kind ~ ":'", "cast(event_id as " ~ dbt.type_string() ~ ")"]) }} as event_key,
        '{{ kind }}' as event_kind
        {%- for column in signup_event_columns() if column.name not in not_staged %},
        {% if column.name == 'email' -%}
            {{ normalize_text('email') }}
        {%- else -%}
            cast({{ column.name }} as {{ column.data_type }})
        {%- endif %} as {{ staged_names.get(column.name, column.name) }}
        {%- endfor %}
    from source
    where event_id is not null
)

select * from renamed
{% endmacro %}
