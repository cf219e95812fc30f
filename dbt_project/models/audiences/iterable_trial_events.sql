{#
  Exactly the Iterable `events/trackBulk` event objects to send (Iterable handbook: SaaS Trials Event, SaaS Free
  Registration): every trial signup as `saasTrial`, and free registrations only when the user set the account up
  for a team or company as `saasFreeRegistration`; personal free registrations are never sent. What decides "set up
  for a company" is the event's own `companyNamespace` (it arrives with the event, minutes before the daily
  `raw.gitlab_users` load could say anything; `setup_for_company` is not consulted). The event names are the dbt
  vars `trial_event_name` / `free_registration_event_name`. Event ids are unique per kind only: the sync key is
  `event_key` (`<kind>:<event_id>`) and the Iterable event `id` is derived from it, so a trial and a free
  registration sharing an id are two events, and re-sending one updates it instead of creating a second one.

  A view: the signup sensor's runs load a file into `raw` and push straight from here, without a dbt build in
  the minute between a signup and its welcome journey.
#}
{{ config(materialized='view') }}

with trial_signups as (
    select * from {{ ref('stg_signups__trial_signup_events') }}
),

free_registrations as (
    select * from {{ ref('stg_signups__free_registration_events') }}
    where is_company_namespace
),

events as (
    select *, '{{ var("trial_event_name") }}' as event_name from trial_signups
    union all
    select *, '{{ var("free_registration_event_name") }}' as event_name from free_registrations
),

final as (
    select
        event_key,
        event_kind,
        event_id,
        email,
        event_name,
        {{ dbt.datediff("cast('1970-01-01' as timestamp)", "occurred_at", "second") }}
            as created_at,
        {{ json_object([
            ('company', 'company'),
            ('companyNamespace', 'is_company_namespace'),
            ('country', 'country'),
            ('employeeBucket', 'employee_bucket'),
            ('firstName', 'first_name'),
            ('lastName', 'last_name'),
            ('latest_trial_start_date', 'cast(latest_trial_start_date as ' ~ dbt.type_string() ~ ')'),
            ('signupReason', 'signup_reason'),
            ('state', 'state'),
            ('userRole', 'user_role'),
        ]) }} as data_fields
    from events
    where email is not null
)

select * from final
