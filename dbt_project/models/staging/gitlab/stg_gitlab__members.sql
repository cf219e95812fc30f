with source as (
    select * from {{ source('gitlab', 'gitlab_members') }}
),

renamed as (
    select
        cast(namespace_id as bigint) as namespace_id,
        cast(user_id as bigint) as user_id,
        cast(access_level as integer) as access_level
    from source
    where namespace_id is not null
        and user_id is not null
)

select * from renamed
