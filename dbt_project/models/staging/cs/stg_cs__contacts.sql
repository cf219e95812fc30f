with source as (
    select * from {{ source('cs', 'cs_contacts') }}
),

renamed as (
    select
        cast(account_id as bigint) as account_id,
        cast(person_id as bigint) as person_id,
        {{ normalize_text('email') }} as email,
        trim(gitlab_role) as gitlab_role
    from source
    where account_id is not null
)

select * from renamed
