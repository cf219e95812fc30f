with source as (
    select * from {{ source('gitlab', 'gitlab_namespaces') }}
),

renamed as (
    select
        cast(namespace_id as bigint) as namespace_id,
        namespace_name,
        cast(creator_user_id as bigint) as creator_user_id,
        cast(created_at as timestamp) as created_at,
        plan_title,
        cast(plan_is_paid as boolean) as is_plan_paid,
        cast(trial_start_date as date) as trial_start_date,
        cast(trial_end_date as date) as trial_end_date,
        cast(is_setup_for_company as boolean) as is_setup_for_company,
        glm_source,
        glm_content,
        cast(is_impacted_by_user_limit as boolean) as is_impacted_by_user_limit,
        cast(is_namespace_pql as boolean) as is_namespace_pql,
        nullif(trim(list_of_stages), '') as list_of_stages
    from source
    where namespace_id is not null
)

select * from renamed
