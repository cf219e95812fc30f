{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    full_refresh=false,
    on_schema_change='fail',
  )
}}
{#
  Initial Source is the first known touch and is never changed once set.
  Append-only: one row per CRM record, written the first time a version carries a known Initial Source.
  Later versions with another value never touch it, and `full_refresh=false` keeps it through
  `dbt build --full-refresh`.
#}
with versions as (
    select * from {{ ref('stg_crm__persons') }}
    where initial_source is not null
),

first_known as (
    select
        person_id,
        initial_source,
        raw_initial_source,
        updated_at as first_seen_at
    from versions
    qualify row_number() over (partition by person_id order by updated_at, created_at) = 1
),

final as (
    select
        first_known.person_id,
        first_known.initial_source,
        first_known.raw_initial_source,
        first_known.first_seen_at,
        cast({{ dbt.current_timestamp() }} as timestamp) as recorded_at
    from first_known
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as recorded
        where recorded.person_id = first_known.person_id
    )
    {% endif %}
)

select * from final
