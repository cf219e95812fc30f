{#-
  The Gainsight Company records of the Customer Programs: one per customer account (every customer is served), with
  the filter fields program creators use (CARR, TAM, account owner team, products purchased, deployment type, support
  level), the segment (Tech Touch, Scale, CSM-Managed), the lifecycle program and dates, and how many recipients it
  has. CARR is exact (decimal(18,2)); NULL when the source value is not a usable amount (`carr_problem` says why).
  `skip_reason` marks bad input the sync rejects.
-#}
with accounts as (
    select * from {{ ref('int_cs_program_accounts') }}
),

recipients as (
    select
        account_id,
        cast(count(*) as integer) as recipient_count,
        cast(sum(case when skip_reason is null then 1 else 0 end) as integer) as sendable_recipient_count
    from {{ ref('gainsight_program_recipients') }}
    group by account_id
),

final as (
    select
        accounts.account_id,
        accounts.account_name,
        accounts.segment,
        accounts.carr,
        accounts.carr_problem,
        accounts.technical_account_manager,
        accounts.account_owner_team,
        accounts.products_purchased,
        accounts.deployment_type,
        accounts.support_level,
        accounts.program,
        accounts.account_created_on,
        accounts.renewal_date,
        accounts.admin_contact_count,
        accounts.sold_to_contact_count,
        coalesce(recipients.recipient_count, 0) as recipient_count,
        coalesce(recipients.sendable_recipient_count, 0) as sendable_recipient_count,
        accounts.account_skip_reason as skip_reason
    from accounts
    left join recipients on accounts.account_id = recipients.account_id
)

select * from final
