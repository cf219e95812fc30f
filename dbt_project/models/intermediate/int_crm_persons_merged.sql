{#
  The latest version of every CRM record, with the record it survives as after merges of any depth.

  Each record's merge chain is walked by a recursive CTE (at most `crm_merge_max_depth` hops), along the
  `merged_into_person_id` of each record's latest version, to the first record that is merged nowhere:
  - a record merged into itself is its own survivor (`merge_issue` = 'self_merge');
  - a record merged into a person id we have never seen stops the chain: the last existing record survives
    ('dangling_target' for every record of that chain);
  - a chain that comes back to a record it passed (A into B, B into A; or longer) is a cycle: every record of the
    cycle, and every record whose chain runs into it, survives as the cycle's lowest person id ('cycle');
  - a chain longer than `crm_merge_max_depth` stops at the record reached last ('chain_too_deep'): that record is
    not a survivor, and the blocking `every_crm_record_in_one_contact` check, which resolves chains without a
    bound, names the records; raise the var.
  The walk remembers the records it passed as `/id/id/.../` text, so it stops at a repeat on every warehouse.
#}
with recursive

persons as (
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

{# One hop per record merged into another record that exists. -#}
merge_edges as (
    select
        latest_versions.person_id,
        latest_versions.merged_into_person_id as next_person_id
    from latest_versions
    inner join latest_versions as targets on latest_versions.merged_into_person_id = targets.person_id
    where latest_versions.merged_into_person_id <> latest_versions.person_id
),

merge_walk (start_person_id, person_id, depth, walked_path) as (
    select
        person_id as start_person_id,
        person_id,
        cast(0 as integer) as depth,
        {#- Typed wide in the anchor: Snowflake sizes a recursive CTE's columns by it. #}
        cast({{ dbt.concat([
            "'/'",
            "cast(person_id as " ~ dbt.type_string() ~ ")",
            "'/'",
        ]) }} as {{ dbt.type_string() }}) as walked_path
    from latest_versions
    union all
    select
        merge_walk.start_person_id,
        merge_edges.next_person_id as person_id,
        cast(merge_walk.depth + 1 as integer) as depth,
        cast({{ dbt.concat([
            "merge_walk.walked_path",
            "cast(merge_edges.next_person_id as " ~ dbt.type_string() ~ ")",
            "'/'",
        ]) }} as {{ dbt.type_string() }}) as walked_path
    from merge_walk
    inner join merge_edges on merge_walk.person_id = merge_edges.person_id
    where merge_walk.depth < {{ var('crm_merge_max_depth') }}
        and {{ dbt.position(
            dbt.concat(["'/'", "cast(merge_edges.next_person_id as " ~ dbt.type_string() ~ ")", "'/'"]),
            "merge_walk.walked_path",
        ) }} = 0
),

walk_ends as (
    select
        start_person_id,
        person_id as end_person_id,
        depth as end_depth
    from merge_walk
    qualify row_number() over (partition by start_person_id order by depth desc) = 1
),

{# Why each walk stopped: the record it reached is merged nowhere, into itself, into a missing record, into a
    record the walk passed (a cycle), or on and on past the depth bound. -#}
walk_outcomes as (
    select
        walk_ends.start_person_id,
        walk_ends.end_person_id,
        ends.merged_into_person_id as end_target_id,
        case
            when ends.merged_into_person_id is null or ends.merged_into_person_id = ends.person_id then null
            when targets.person_id is null then 'dangling_target'
            when entries.person_id is not null then 'cycle'
            else 'chain_too_deep'
        end as walk_issue,
        entries.depth as cycle_entry_depth
    from walk_ends
    inner join latest_versions as ends on walk_ends.end_person_id = ends.person_id
    left join latest_versions as targets on ends.merged_into_person_id = targets.person_id
    left join merge_walk as entries
        on walk_ends.start_person_id = entries.start_person_id
        and ends.merged_into_person_id = entries.person_id
),

{# A cycle's survivor is its lowest person id: the same for every walk that runs into it. -#}
cycle_survivors as (
    select
        walk_outcomes.start_person_id,
        min(merge_walk.person_id) as surviving_person_id
    from walk_outcomes
    inner join merge_walk
        on walk_outcomes.start_person_id = merge_walk.start_person_id
        and walk_outcomes.cycle_entry_depth <= merge_walk.depth
    where walk_outcomes.walk_issue = 'cycle'
    group by walk_outcomes.start_person_id
),

survivors as (
    select
        walk_outcomes.start_person_id as person_id,
        coalesce(cycle_survivors.surviving_person_id, walk_outcomes.end_person_id) as surviving_person_id,
        coalesce(
            walk_outcomes.walk_issue,
            case when latest_versions.merged_into_person_id = latest_versions.person_id then 'self_merge' end
        ) as merge_issue
    from walk_outcomes
    inner join latest_versions on walk_outcomes.start_person_id = latest_versions.person_id
    left join cycle_survivors on walk_outcomes.start_person_id = cycle_survivors.start_person_id
),

final as (
    select
        latest_versions.person_id,
        survivors.surviving_person_id,
        latest_versions.person_id = survivors.surviving_person_id as is_survivor,
        latest_versions.merged_into_person_id,
        survivors.merge_issue,
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
