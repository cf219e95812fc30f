{#
  The latest version of every CRM record, with the record it survives as after merges.
  Merge chains are followed up to three hops (A -> B -> C -> D); a pointer to a record we have never seen
  leaves the record as its own survivor, so no person is lost.
#}
with persons as (
    select * from {{ ref('stg_crm__persons') }}
),

latest_versions as (
    select *
    from persons
    qualify row_number() over (partition by person_id order by updated_at desc) = 1
),

first_versions as (
    select
        person_id,
        min(created_at) as first_created_at,
        count(*) as version_count
    from persons
    group by person_id
),

merge_edges as (
    select
        person_id,
        merged_into_person_id
    from latest_versions
),

survivors as (
    select
        hop_1.person_id,
        case
            when hop_1.merged_into_person_id is null or hop_2.person_id is null then hop_1.person_id
            when hop_2.merged_into_person_id is null or hop_3.person_id is null then hop_2.person_id
            when hop_3.merged_into_person_id is null or hop_4.person_id is null then hop_3.person_id
            else hop_4.person_id
        end as surviving_person_id
    from merge_edges as hop_1
    left join merge_edges as hop_2 on hop_1.merged_into_person_id = hop_2.person_id
    left join merge_edges as hop_3 on hop_2.merged_into_person_id = hop_3.person_id
    left join merge_edges as hop_4 on hop_3.merged_into_person_id = hop_4.person_id
),

final as (
    select
        latest_versions.person_id,
        survivors.surviving_person_id,
        latest_versions.person_id = survivors.surviving_person_id as is_survivor,
        latest_versions.email,
        latest_versions.record_type,
        latest_versions.lead_status,
        latest_versions.person_score,
        latest_versions.account_id,
        first_versions.first_created_at as created_at,
        latest_versions.updated_at,
        first_versions.version_count
    from latest_versions
    inner join survivors on latest_versions.person_id = survivors.person_id
    inner join first_versions on latest_versions.person_id = first_versions.person_id
)

select * from final
