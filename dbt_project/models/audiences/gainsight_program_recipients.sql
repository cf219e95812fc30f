{#-
  Who receives which Customer Programs e-mail journey (Customer Programs handbook): one row per customer account x
  person (every customer account is in exactly one lifecycle program and one segment), with the reason the person
  was chosen:
    gitlab_admin      - the account's `GitLab Admin` contacts (there can be several): the primary recipients;
    sold_to_fallback  - the `Sold-To` contacts, only when the account has no GitLab Admin with a usable e-mail
                        address (web-direct purchases, or an Admin nobody can write to);
                        each of them when there are several (the `account_has_several_sold_to_contacts` check names
                        those accounts); never surveyed (no NPS/CSAT);
    saas_owner        - on SaaS accounts, Owners of the account's namespace;
    saas_maintainer   - on SaaS accounts, Maintainers of it (Developers and below are not added).
  A person chosen for several reasons is listed once, with the first reason above. Only the GitLab Admin receives
  surveys. Rows with bad input stay in the model with `skip_reason` (the sync records them as rejected): no e-mail
  address, or an account-level problem (unknown deployment type).
-#}
with accounts as (
    select * from {{ ref('int_cs_program_accounts') }}
),

contacts as (
    select * from {{ ref('stg_cs__contacts') }}
),

members as (
    select * from {{ ref('stg_gitlab__members') }}
),

access_levels as (
    select * from {{ ref('dim_access_level') }}
),

users as (
    select * from {{ ref('stg_gitlab__users') }}
),

role_contacts as (
    select
        contacts.account_id,
        contacts.person_id,
        cast(null as bigint) as user_id,
        contacts.email,
        contacts.gitlab_role as role,
        case when contacts.gitlab_role = 'GitLab Admin' then 'gitlab_admin' else 'sold_to_fallback' end
            as recipient_reason,
        case when contacts.gitlab_role = 'GitLab Admin' then 1 else 2 end as reason_rank
    from contacts
    inner join accounts on contacts.account_id = accounts.account_id
    where contacts.gitlab_role = 'GitLab Admin'
        or (contacts.gitlab_role = 'Sold-To' and accounts.reachable_admin_count = 0)
),

saas_members as (
    select
        accounts.account_id,
        cast(null as bigint) as person_id,
        users.user_id,
        users.email,
        access_levels.access_level_name as role,
        case when members.access_level = 50 then 'saas_owner' else 'saas_maintainer' end as recipient_reason,
        case when members.access_level = 50 then 3 else 4 end as reason_rank
    from accounts
    inner join members on accounts.namespace_id = members.namespace_id
    inner join access_levels on members.access_level = access_levels.access_level
    inner join users on members.user_id = users.user_id
    where accounts.deployment_type = 'SaaS'
        and members.access_level in (40, 50)
        and {{ 'true' if var('gainsight_include_saas_members') else 'false' }}
),

candidates as (
    select * from role_contacts
    union all
    select * from saas_members
),

ranked as (
    select
        candidates.*,
        coalesce(
            candidates.email,
            'person-' || cast(candidates.person_id as {{ dbt.type_string() }}),
            'unidentified-contact'
        ) as identity,
        row_number() over (
            partition by
                candidates.account_id,
                coalesce(
                    candidates.email,
                    'person-' || cast(candidates.person_id as {{ dbt.type_string() }}),
                    'unidentified-contact'
                )
            order by candidates.reason_rank, candidates.person_id, candidates.user_id
        ) as identity_rank
    from candidates
),

final as (
    select
        cast(accounts.account_id as {{ dbt.type_string() }}) || ':' || ranked.identity as recipient_key,
        accounts.account_id,
        accounts.account_name,
        ranked.person_id,
        ranked.user_id,
        ranked.email,
        ranked.role,
        ranked.recipient_reason,
        ranked.recipient_reason = 'gitlab_admin' as receives_surveys,
        accounts.program,
        accounts.segment,
        accounts.carr,
        accounts.technical_account_manager,
        accounts.account_owner_team,
        accounts.products_purchased,
        accounts.deployment_type,
        accounts.support_level,
        case
            when accounts.account_skip_reason is not null then accounts.account_skip_reason
            when ranked.email is null then 'contact has no e-mail address'
            when not {{ matches_pattern('ranked.email', '[^@[:space:]]+@[^@[:space:]]+[.][^@[:space:]]+') }}
                then 'contact e-mail is not an address'
        end as skip_reason
    from ranked
    inner join accounts on ranked.account_id = accounts.account_id
    where ranked.identity_rank = 1
)

select * from final
