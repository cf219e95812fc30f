{#-
  The staging shape shared by both landed event tables (`stg_signups__trial_signup_events`,
  `stg_signups__free_registration_events`): light renames and casts of `source('signups', table)`, plus the
  event's kind (its landing folder) and `event_key` (`<kind>:<event_id>`): event ids are unique per kind only, so a
  trial signup and a free registration may share one and stay two events.
-#}
{% macro stg_signup_events(table, kind) %}
with source as (
    select * from {{ source('signups', table) }}
),

renamed as (
    select
        {{ dbt.concat(["'" ~ kind ~ ":'", "cast(event_id as " ~ dbt.type_string() ~ ")"]) }} as event_key,
        '{{ kind }}' as event_kind,
        cast(event_id as {{ dbt.type_string() }}) as event_id,
        cast(occurred_at as timestamp) as occurred_at,
        {{ normalize_text('email') }} as email,
        cast(user_id as bigint) as user_id,
        cast(namespace_id as bigint) as namespace_id,
        company,
        cast(company_namespace as boolean) as is_company_namespace,
        country,
        employee_bucket,
        first_name,
        last_name,
        cast(latest_trial_start_date as date) as latest_trial_start_date,
        signup_reason,
        state,
        user_role,
        source_file,
        line_number,
        loaded_at
    from source
    where event_id is not null
)

select * from renamed
{% endmacro %}
