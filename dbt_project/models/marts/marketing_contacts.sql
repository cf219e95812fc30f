with persons as (
    select * from {{ ref('int_crm_persons_merged') }}
),

initial_source_history as (
    select * from {{ ref('initial_source_history') }}
),

initial_sources as (
    select * from {{ ref('dim_initial_source') }}
),

lead_statuses as (
    select * from {{ ref('dim_lead_status') }}
),

unsubscribes as (
    select * from {{ ref('stg_marketo__unsubscribes') }}
),

survivors as (
    select * from persons
    where is_survivor
),

{# When records merge, the Initial Source that was set first in the whole merged set wins. -#}
merged_set_sources as (
    select
        persons.surviving_person_id,
        initial_source_history.initial_source,
        initial_source_history.first_seen_at,
        row_number() over (
            partition by persons.surviving_person_id
            order by initial_source_history.first_seen_at, initial_source_history.person_id
        ) as source_rank
    from persons
    inner join initial_source_history on persons.person_id = initial_source_history.person_id
),

oldest_sources as (
    select * from merged_set_sources
    where source_rank = 1
),

merged_sets as (
    select
        surviving_person_id,
        min(created_at) as created_at,
        count(*) as merged_record_count
    from persons
    group by surviving_person_id
),

{# An unsubscribe opts the person out; any e-mail of a merged set counts. -#}
unsubscribed_persons as (
    select distinct persons.surviving_person_id
    from persons
    inner join unsubscribes on persons.email = unsubscribes.email
),

final as (
    select
        survivors.person_id,
        survivors.email,
        survivors.record_type,
        lead_statuses.lead_status,
        lead_statuses.funnel_order as lead_status_funnel_order,
        oldest_sources.initial_source,
        initial_sources.source_bucket as initial_source_bucket,
        oldest_sources.first_seen_at as initial_source_first_seen_at,
        survivors.person_score,
        {#- isMql is the score rule; lead_status stays the CRM's canonical status even when they disagree
            (mql_matches_score names those contacts). -#}
        coalesce(survivors.person_score >= {{ var('mql_score_threshold') }}, false) as is_mql,
        survivors.email is not null and unsubscribed_persons.surviving_person_id is null as is_opted_in,
        survivors.account_id,
        merged_sets.merged_record_count,
        merged_sets.created_at,
        survivors.updated_at
    from survivors
    inner join merged_sets on survivors.person_id = merged_sets.surviving_person_id
    left join oldest_sources on survivors.person_id = oldest_sources.surviving_person_id
    left join initial_sources on oldest_sources.initial_source = initial_sources.initial_source
    left join lead_statuses on survivors.lead_status = lead_statuses.lead_status
    left join unsubscribed_persons on survivors.person_id = unsubscribed_persons.surviving_person_id
)

select * from final
