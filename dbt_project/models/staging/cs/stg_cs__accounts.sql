with source as (
    select * from {{ source('cs', 'cs_accounts') }}
),

renamed as (
    select
        cast(account_id as bigint) as account_id,
        account_name,
        {#- Snowflake's TRY_CAST only takes strings: cast to text first (a no-op for text, valid everywhere). -#}
        {{ dbt.safe_cast(dbt.cast('carr', dbt.type_string()), api.Column.translate_type('float')) }} as carr,
        nullif(trim(technical_account_manager), '') as technical_account_manager,
        account_owner_team,
        products_purchased,
        trim(deployment_type) as deployment_type,
        support_level,
        cast(namespace_id as bigint) as namespace_id
    from source
    where account_id is not null
)

select * from renamed
