with source as (
    select * from {{ source('crm', 'crm_persons') }}
),

initial_sources as (
    select * from {{ ref('dim_initial_source') }}
),

lead_statuses as (
    select * from {{ ref('dim_lead_status') }}
),

{# A raw value maps to a canonical Initial Source only when exactly one value matches it. -#}
canonical_sources as (
    select
        {{ normalize_text('initial_source') }} as match_key,
        min(initial_source) as initial_source
    from initial_sources
    group by 1
    having count(*) = 1
),

{# Lead statuses likewise, ignoring case and every space (` mql ` is `MQL`). -#}
canonical_statuses as (
    select
        {{ loose_match_key('lead_status') }} as match_key,
        min(lead_status) as lead_status
    from lead_statuses
    group by 1
    having count(*) = 1
),

typed as (
    select
        source.*,
        {{ safe_cast("cast(source.person_score as " ~ dbt.type_string() ~ ")", "integer") }} as parsed_person_score
    from source
),

renamed as (
    select
        cast(source.person_id as bigint) as person_id,
        {{ normalize_text('source.email') }} as email,
        lower(trim(source.record_type)) as record_type,
        source.status as raw_lead_status,
        canonical_statuses.lead_status,
        source.initial_source as raw_initial_source,
        canonical_sources.initial_source,
        cast(source.person_score as {{ dbt.type_string() }}) as raw_person_score,
        case when source.parsed_person_score >= 0 then source.parsed_person_score end as person_score,
        cast(source.account_id as bigint) as account_id,
        cast(source.created_at as timestamp) as created_at,
        cast(source.updated_at as timestamp) as updated_at,
        cast(source.merged_into_person_id as bigint) as merged_into_person_id
    from typed as source
    left join canonical_statuses
        on {{ loose_match_key('source.status') }} = canonical_statuses.match_key
    left join canonical_sources
        on {{ normalize_text('source.initial_source') }} = canonical_sources.match_key
    where source.person_id is not null
)

select * from renamed
