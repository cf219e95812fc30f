with source as (
    select * from {{ source('marketo', 'marketo_unsubscribes') }}
),

renamed as (
    select
        cast(event_id as {{ dbt.type_string() }}) as event_id,
        {{ normalize_text('email') }} as email,
        cast(unsubscribed_at as timestamp) as unsubscribed_at
    from source
    where event_id is not null
)

select * from renamed
