{#-
  CARR lands as text, as the customer-success platform exports it: a number almost always, but sometimes text
  ("n/a"). `carr` is the exact amount, decimal(18,2) (NULL when the text is not a number); `carr_text` keeps what
  arrived, so the program models and checks can name the accounts whose CARR is not a usable amount.
-#}
with source as (
    select * from {{ source('cs', 'cs_accounts') }}
),

renamed as (
    select
        cast(account_id as bigint) as account_id,
        account_name,
        nullif(trim(cast(carr as {{ dbt.type_string() }})), '') as carr_text,
        {{ safe_money("nullif(trim(cast(carr as " ~ dbt.type_string() ~ ")), '')") }} as carr,
        nullif(trim(technical_account_manager), '') as technical_account_manager,
        account_owner_team,
        products_purchased,
        trim(deployment_type) as deployment_type,
        support_level,
        cast(namespace_id as bigint) as namespace_id,
        cast(created_at as timestamp) as account_created_at,
        cast(renewal_date as date) as renewal_date
    from source
    where account_id is not null
)

select * from renamed
