{#-
  CARR lands as text, as the customer-success platform exports it: a number almost always, but sometimes text
  ("n/a"). `carr_text` keeps what arrived without its surrounding whitespace (NULL when nothing is left: a missing
  CARR, not a problem); `carr` is the exact amount, decimal(18,2), when that text is an amount by the rule of the
  `amount_pattern` macro (plain digits, an optional leading '-', at most two decimals, at most 16 integer digits),
  NULL otherwise. The program models and checks name the accounts whose CARR is not a usable amount.
  A TAM or a deployment type that is only whitespace (spaces, tabs, newlines) is no value (NULL).
-#}
with source as (
    select * from {{ source('cs', 'cs_accounts') }}
),

stripped as (
    select
        source.*,
        {{ strip_whitespace('cast(source.carr as ' ~ dbt.type_string() ~ ')') }} as stripped_carr
    from source
),

renamed as (
    select
        cast(account_id as bigint) as account_id,
        account_name,
        stripped_carr as carr_text,
        {{ safe_money('stripped_carr') }} as carr,
        {{ strip_whitespace('technical_account_manager') }} as technical_account_manager,
        account_owner_team,
        products_purchased,
        {{ strip_whitespace('deployment_type') }} as deployment_type,
        support_level,
        cast(namespace_id as bigint) as namespace_id,
        cast(created_at as timestamp) as account_created_at,
        cast(renewal_date as date) as renewal_date
    from stripped
    where account_id is not null
)

select * from renamed
