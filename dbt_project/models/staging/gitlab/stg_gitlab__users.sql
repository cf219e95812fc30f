with source as (
    select * from {{ source('gitlab', 'gitlab_users') }}
),

renamed as (
    select
        cast(user_id as bigint) as user_id,
        {{ normalize_text('email') }} as email,
        first_name,
        last_name,
        company,
        country,
        state,
        user_role,
        employee_bucket,
        signup_reason,
        cast(setup_for_company as boolean) as is_setup_for_company,
        cast(created_at as timestamp) as created_at
    from source
    where user_id is not null
)

select * from renamed
