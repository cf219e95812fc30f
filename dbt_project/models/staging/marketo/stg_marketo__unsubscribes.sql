with source as (
    select * from {{ source('marketo', 'marketo_unsubscribes') }}
),

renamed as (
    select
        {# An unsubscribe without an activity id still opts the person out (consent first): it gets a stable id
            of its own from its e-mail and time, never the e-mail itself. The raw-source test names such rows. #}
        coalesce(
            cast(event_id as {{ dbt.type_string() }}),
            'missing-id:' || {{ dbt.hash(
                normalize_text('email') ~ " || '|' || coalesce(cast(unsubscribed_at as " ~ dbt.type_string() ~ "), '')"
            ) }}
        ) as event_id,
        {{ normalize_text('email') }} as email,
        cast(unsubscribed_at as timestamp) as unsubscribed_at
    from source
    where event_id is not null or {{ normalize_text('email') }} is not null
)

select * from renamed
