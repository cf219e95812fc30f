{#-
  One row per customer account with its Customer Programs segment and lifecycle stage (Customer Programs handbook,
  Customer Digital Journey handbook) and, when it cannot be pushed, why. Every customer is in a program.
  Segment ("segment specific journey - Tech Touch | Scale | CSM-Managed"), first match wins:
    CSM-Managed - a TAM is assigned (`technical_account_manager` not empty);
    Scale       - CARR >= `gainsight_scale_carr_threshold` (50000);
    Tech Touch  - everything else, including accounts whose CARR is missing, not a number or negative.
  Program by lifecycle, first match wins:
    onboarding  - the account became a customer fewer than `gainsight_onboarding_days` (90) days ago;
    retention   - its renewal date is within `gainsight_renewal_window_days` (120) days, or already past;
    enablement  - everything else (and accounts without dates).
  A CARR that is not an amount (see `stg_cs__accounts`) or negative is left out (`carr` NULL, `carr_problem` says
  why): the account is still served; the `account_carr_not_an_amount` check names it. A missing CARR (empty or only
  whitespace) is NULL without a problem.
  `reachable_admin_count` counts the GitLab Admins with a usable e-mail address: only they can receive the programs,
  so an account without one falls back to its Sold-To contacts.
-#}
with accounts as (
    select * from {{ ref('stg_cs__accounts') }}
),

contacts as (
    select * from {{ ref('stg_cs__contacts') }}
),

contact_roles as (
    select
        account_id,
        cast(sum(case when gitlab_role = 'GitLab Admin' then 1 else 0 end) as integer) as admin_contact_count,
        cast(sum(case when gitlab_role = 'GitLab Admin' and has_usable_email then 1 else 0 end) as integer)
            as reachable_admin_count,
        cast(sum(case when gitlab_role = 'Sold-To' then 1 else 0 end) as integer) as sold_to_contact_count
    from contacts
    group by account_id
),

lifecycle as (
    select
        accounts.*,
        cast(accounts.account_created_at as date) as account_created_on,
        {{ dbt.datediff('cast(accounts.account_created_at as date)', as_of_date(), 'day') }}
            as account_age_days,
        {{ dbt.datediff(as_of_date(), 'accounts.renewal_date', 'day') }}
            as days_to_renewal
    from accounts
),

final as (
    select
        lifecycle.account_id,
        lifecycle.account_name,
        case when lifecycle.carr >= 0 then lifecycle.carr end as carr,
        lifecycle.carr_text,
        case
            when lifecycle.carr_text is not null and lifecycle.carr is null
                then 'CARR is not an amount: ' || lifecycle.carr_text
            when lifecycle.carr < 0 then 'CARR is negative: ' || lifecycle.carr_text
        end as carr_problem,
        lifecycle.technical_account_manager,
        lifecycle.account_owner_team,
        lifecycle.products_purchased,
        lifecycle.deployment_type,
        lifecycle.support_level,
        lifecycle.namespace_id,
        lifecycle.account_created_on,
        lifecycle.renewal_date,
        lifecycle.account_age_days,
        lifecycle.days_to_renewal,
        coalesce(contact_roles.admin_contact_count, 0) as admin_contact_count,
        coalesce(contact_roles.reachable_admin_count, 0) as reachable_admin_count,
        coalesce(contact_roles.sold_to_contact_count, 0) as sold_to_contact_count,
        lifecycle.technical_account_manager is not null as is_tam_managed,
        case
            when lifecycle.technical_account_manager is not null then 'CSM-Managed'
            when lifecycle.carr >= {{ var('gainsight_scale_carr_threshold') }} then 'Scale'
            else 'Tech Touch'
        end as segment,
        case
            when lifecycle.account_age_days < {{ var('gainsight_onboarding_days') }} then 'onboarding'
            when lifecycle.days_to_renewal <= {{ var('gainsight_renewal_window_days') }} then 'retention'
            else 'enablement'
        end as program,
        case
            when lifecycle.deployment_type is null or lifecycle.deployment_type not in ('SaaS', 'Self-Managed')
                then 'unknown deployment type: ' || coalesce(lifecycle.deployment_type, 'NULL')
        end as account_skip_reason
    from lifecycle
    left join contact_roles on lifecycle.account_id = contact_roles.account_id
)

select * from final
