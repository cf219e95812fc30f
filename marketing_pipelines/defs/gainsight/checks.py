"""Checks that guard the Customer Programs push (Customer Programs handbook).

Each check reaches its verdict from staging (`stg_cs__accounts`, `stg_cs__contacts`, `stg_gitlab__members`) with its
own SQL, never by re-reading the expression of the model it guards; `company_carr_matches_source` goes further back
and parses the raw CARR text in Python, and `every_program_account_has_a_recipient` reads the recipients audience,
because what it warns about is what will be sent. ERROR checks are blocking: on the recipients they
stop both Gainsight syncs (both depend on that asset); on the companies they stop the company sync and, through it,
the person sync. WARN checks name the accounts CS Ops should fix at the source; the push goes on.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import dagster as dg

from marketing_pipelines.defs.change_guard import change_guard_check
from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.destinations import sync_health_check
from marketing_pipelines.defs.gainsight.assets import COMPANIES_KEY, RECIPIENTS_KEY
from marketing_pipelines.defs.rule_checks import ViolationTally, dbt_project_var, violations_result
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.sync.gainsight import COMPANIES, COMPANY_AUDIENCE, PEOPLE, PERSON_AUDIENCE

SOLD_TO_NEVER_SURVEYED = "sold_to_never_surveyed"
RECIPIENT_ROLES_VALID = "recipient_roles_valid"
EVERY_PROGRAM_ACCOUNT_HAS_A_RECIPIENT = "every_program_account_has_a_recipient"
ACCOUNT_HAS_SEVERAL_SOLD_TO_CONTACTS = "account_has_several_sold_to_contacts"
ACCOUNT_CARR_NOT_AN_AMOUNT = "account_carr_not_an_amount"
EVERY_CUSTOMER_ACCOUNT_IN_A_PROGRAM = "every_customer_account_in_a_program"
COMPANY_CARR_MATCHES_SOURCE = "company_carr_matches_source"

ACCOUNT_LABELS = ("account_id", "account_name", "value")
#: Whitespace allowed around an amount: ASCII whitespace, as `[[:space:]]` in the models' SQL.
AMOUNT_WHITESPACE = " \t\n\r\v\f"
#: An amount written as text: an optional leading '-', 1 to 16 digits, optionally a '.' and one or two decimals.
AMOUNT_TEXT = re.compile(r"-?[0-9]{1,16}(?:\.[0-9]{1,2})?")
READ_BATCH_ROWS = 10_000
GAINSIGHT_COMPANY_CHANGE_GUARD = "gainsight_company_change_guard"
GAINSIGHT_PERSON_CHANGE_GUARD = "gainsight_person_change_guard"

#: The only reasons a person may receive a program, and the contact role or access level each one requires.
REASON_ROLES = {
    "gitlab_admin": "GitLab Admin",
    "sold_to_fallback": "Sold-To",
    "saas_owner": "Owner",
    "saas_maintainer": "Maintainer",
}


def source_carr(text: object) -> Decimal | None:
    """The CARR a company must carry for the CARR text that arrived, parsed here, not by the models' SQL.

    None when the text is missing (NULL, empty or only whitespace), is not an amount (anything but an optional
    leading '-', 1 to 16 digits and optionally a '.' with one or two decimals: no exponent, '+', separators,
    currency signs, third decimal, non-ASCII digits) or is negative; otherwise the exact amount.
    """
    import pandas as pd  # here, not at import: loading the definitions (every run start) skips pandas

    if text is None or (not isinstance(text, str) and pd.isna(text)):
        return None
    stripped = str(text).strip(AMOUNT_WHITESPACE)
    if not AMOUNT_TEXT.fullmatch(stripped):
        return None
    amount = Decimal(stripped)
    return amount if amount >= 0 else None


def has_reachable_admin(account_id: str) -> str:
    """SQL: the account `account_id` (an SQL expression) has a GitLab Admin contact in `stg_cs__contacts` with a
    usable e-mail address (without one, the Sold-To contacts receive the programs)."""
    return f"""exists (
        select 1 from staging.stg_cs__contacts as admins
        where admins.account_id = {account_id}
          and admins.gitlab_role = 'GitLab Admin'
          and admins.has_usable_email
    )"""


def scale_carr_threshold() -> Decimal:
    """The dbt var `gainsight_scale_carr_threshold` as `dbt_project.yml` sets it (the value every run builds with)."""
    value = dbt_project_var("gainsight_scale_carr_threshold")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"gainsight_scale_carr_threshold is not a number: {value!r}") from None


@dg.asset_check(
    asset=RECIPIENTS_KEY,
    name=SOLD_TO_NEVER_SURVEYED,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description=(
        "Customer Programs handbook: a Sold-To contact gets program communications but never NPS or CSAT surveys. "
        "Fails on any recipient allowed surveys who was chosen as the Sold-To fallback, or who is a Sold-To (and "
        "not a GitLab Admin) contact of the account in `stg_cs__contacts`. Blocks both Gainsight syncs."
    ),
)
def sold_to_never_surveyed(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select recipients.person_id, recipients.email, recipients.recipient_reason as value
        from audiences.gainsight_program_recipients as recipients
        where recipients.receives_surveys
          and (
            recipients.recipient_reason = 'sold_to_fallback'
            or exists (
                select 1 from staging.stg_cs__contacts as sold_to
                where sold_to.account_id = recipients.account_id
                  and sold_to.email = recipients.email
                  and sold_to.gitlab_role = 'Sold-To'
                  and not exists (
                      select 1 from staging.stg_cs__contacts as admins
                      where admins.account_id = sold_to.account_id
                        and admins.email = sold_to.email
                        and admins.gitlab_role = 'GitLab Admin'
                  )
            )
          )
        """,
        severity=dg.AssetCheckSeverity.ERROR,
        what="Sold-To contacts would receive NPS/CSAT surveys",
    )


@dg.asset_check(
    asset=RECIPIENTS_KEY,
    name=RECIPIENT_ROLES_VALID,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description=(
        "Customer Programs handbook: every recipient was chosen for one of four reasons, with the matching role, "
        "and staging confirms it: gitlab_admin (a GitLab Admin contact of the account in `stg_cs__contacts`), "
        "sold_to_fallback (a Sold-To contact of an account without a GitLab Admin with a usable e-mail address), "
        "saas_owner / saas_maintainer "
        "(Owner / Maintainer of the SaaS account's namespace in `stg_gitlab__members`). Blocks both syncs."
    ),
)
def recipient_roles_valid(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    reasons = ", ".join(f"'{reason}'" for reason in REASON_ROLES)
    role_mismatch = " or ".join(
        f"(recipients.recipient_reason = '{reason}' and coalesce(recipients.role, '') <> '{role}')"
        for reason, role in REASON_ROLES.items()
    )
    return violations_result(
        warehouse.get_warehouse(),
        f"""
        select
            recipients.person_id,
            recipients.email,
            coalesce(recipients.recipient_reason, 'NULL') || ' as ' || coalesce(recipients.role, 'NULL') as value
        from audiences.gainsight_program_recipients as recipients
        where recipients.recipient_reason is null
           or recipients.recipient_reason not in ({reasons})
           or {role_mismatch}
           or (
               recipients.recipient_reason in ('gitlab_admin', 'sold_to_fallback')
               and not exists (
                   select 1 from staging.stg_cs__contacts as contacts
                   where contacts.account_id = recipients.account_id
                     -- NULL-safe: a contact row without a person id (bad input, skipped) still confirms itself
                     and contacts.person_id is not distinct from recipients.person_id
                     and (recipients.person_id is not null or contacts.email is not distinct from recipients.email)
                     and contacts.gitlab_role
                         = case when recipients.recipient_reason = 'gitlab_admin' then 'GitLab Admin' else 'Sold-To' end
               )
           )
           or (
               recipients.recipient_reason = 'sold_to_fallback'
               and {has_reachable_admin("recipients.account_id")}
           )
           or (
               recipients.recipient_reason in ('saas_owner', 'saas_maintainer')
               and not exists (
                   select 1
                   from staging.stg_cs__accounts as accounts
                   inner join staging.stg_gitlab__members as members on accounts.namespace_id = members.namespace_id
                   where accounts.account_id = recipients.account_id
                     and accounts.deployment_type = 'SaaS'
                     and members.user_id = recipients.user_id
                     and members.access_level
                         = case when recipients.recipient_reason = 'saas_owner' then 50 else 40 end
               )
           )
        """,
        severity=dg.AssetCheckSeverity.ERROR,
        what="recipients have a reason outside the four allowed, or a role staging does not confirm",
    )


@dg.asset_check(
    asset=COMPANIES_KEY,
    name=EVERY_PROGRAM_ACCOUNT_HAS_A_RECIPIENT,
    pool=WAREHOUSE_POOL,
    description=(
        "Customer Programs handbook: configuring a GitLab Admin contact is a required step of the sales process. "
        "Warns on program accounts that no recipient in `gainsight_program_recipients` can be sent to (none at all, "
        "or only skipped ones: no usable e-mail address, an account that is skipped), naming them with why, so CS "
        "Ops can add a contact with an e-mail address."
    ),
)
def every_program_account_has_a_recipient(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select
            companies.account_id as person_id,
            companies.account_name as email,
            case
                when companies.skip_reason is not null then 'account skipped: ' || companies.skip_reason
                when not exists (
                    select 1 from audiences.gainsight_program_recipients as any_recipient
                    where any_recipient.account_id = companies.account_id
                ) then 'no GitLab Admin or Sold-To contact'
                else 'no recipient with a usable e-mail address'
            end as value
        from audiences.gainsight_program_companies as companies
        where companies.skip_reason is not null
           or not exists (
               select 1 from audiences.gainsight_program_recipients as recipients
               where recipients.account_id = companies.account_id and recipients.skip_reason is null
           )
        """,
        severity=dg.AssetCheckSeverity.WARN,
        what="program accounts have no recipient that can be sent to",
        labels=ACCOUNT_LABELS,
    )


@dg.asset_check(
    asset=COMPANIES_KEY,
    name=ACCOUNT_HAS_SEVERAL_SOLD_TO_CONTACTS,
    pool=WAREHOUSE_POOL,
    description=(
        "Customer Programs handbook: without a GitLab Admin, the Sold-To contact receives the programs. Warns on "
        "accounts with no GitLab Admin with a usable e-mail address and two or more Sold-To contacts in "
        "`stg_cs__contacts`, naming them: each Sold-To receives the programs (never surveys) until CS Ops "
        "configures a GitLab Admin."
    ),
)
def account_has_several_sold_to_contacts(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        f"""
        select
            accounts.account_id as person_id,
            accounts.account_name as email,
            cast(count(*) as varchar) || ' Sold-To contacts, no GitLab Admin with an e-mail address' as value
        from staging.stg_cs__accounts as accounts
        inner join staging.stg_cs__contacts as sold_to
            on sold_to.account_id = accounts.account_id and sold_to.gitlab_role = 'Sold-To'
        where not {has_reachable_admin("accounts.account_id")}
        group by accounts.account_id, accounts.account_name
        having count(*) > 1
        """,
        severity=dg.AssetCheckSeverity.WARN,
        what="accounts have several Sold-To contacts and no GitLab Admin with an e-mail address",
        labels=ACCOUNT_LABELS,
    )


@dg.asset_check(
    asset=COMPANIES_KEY,
    name=ACCOUNT_CARR_NOT_AN_AMOUNT,
    pool=WAREHOUSE_POOL,
    description=(
        "Customer Digital Journey handbook: program creators filter on CARR. Warns on accounts whose CARR in "
        "`stg_cs__accounts.carr_text` is not an amount (an optional leading '-', at most 16 digits, at most two "
        "decimals: no exponent, '+', separators or currency signs) or is negative, naming them with the text that "
        "arrived: the account is still served (Tech Touch unless it has a TAM) and its CARR is left out (NULL). A "
        "missing CARR (empty or only whitespace) is not named."
    ),
)
def account_carr_not_an_amount(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select accounts.account_id as person_id, accounts.account_name as email, accounts.carr_text as value
        from staging.stg_cs__accounts as accounts
        where accounts.carr_text is not null and (accounts.carr is null or accounts.carr < 0)
        """,
        severity=dg.AssetCheckSeverity.WARN,
        what="accounts have a CARR that is not an amount or is negative",
        labels=ACCOUNT_LABELS,
    )


@dg.asset_check(
    asset=COMPANIES_KEY,
    name=EVERY_CUSTOMER_ACCOUNT_IN_A_PROGRAM,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description=(
        "Customer Programs handbook: all customers are served, with segment-specific journeys. Recomputes each "
        "customer account's segment from `stg_cs__accounts` (CSM-Managed with a TAM; else Scale when CARR, which "
        "`company_carr_matches_source` checks against the source text, >= dbt var "
        "`gainsight_scale_carr_threshold`; else Tech Touch) and fails on an account missing from the companies, "
        "with another segment, or a company that is not a customer account. Blocks both Gainsight syncs."
    ),
)
def every_customer_account_in_a_program(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Recomputes each account's segment from staging on purpose, independent of the companies model's CASE."""
    threshold = scale_carr_threshold()
    return violations_result(
        warehouse.get_warehouse(),
        f"""
        with expected as (
            select
                accounts.account_id,
                accounts.account_name,
                case
                    when trim(coalesce(accounts.technical_account_manager, '')) <> '' then 'CSM-Managed'
                    when accounts.carr >= cast('{threshold}' as decimal(18, 2)) then 'Scale'
                    else 'Tech Touch'
                end as segment
            from staging.stg_cs__accounts as accounts
        )
        select
            coalesce(expected.account_id, companies.account_id) as person_id,
            coalesce(expected.account_name, companies.account_name) as email,
            case
                when companies.account_id is null then 'not in a program (expected ' || expected.segment || ')'
                when expected.account_id is null then 'not a customer account'
                else coalesce(companies.segment, 'no segment') || ' instead of ' || expected.segment
            end as value
        from expected
        full outer join audiences.gainsight_program_companies as companies
            on expected.account_id = companies.account_id
        where companies.account_id is null
           or expected.account_id is null
           or companies.segment is null
           or companies.segment <> expected.segment
        """,
        severity=dg.AssetCheckSeverity.ERROR,
        what="customer accounts are missing from the programs or have another segment than their source implies",
        labels=ACCOUNT_LABELS,
    )


#: Every company with its CARR as text in cents (never through a float) and the CARR text that arrived.
COMPANY_CARR_SQL = """
    select
        companies.account_id,
        companies.account_name,
        cast(cast(companies.carr as decimal(38, 2)) as varchar) as carr,
        cast(source.carr as varchar) as carr_text
    from audiences.gainsight_program_companies as companies
    left join raw.cs_accounts as source on cast(source.account_id as bigint) = companies.account_id
    order by companies.account_id
"""


@dg.asset_check(
    asset=COMPANIES_KEY,
    name=COMPANY_CARR_MATCHES_SOURCE,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description=(
        "Exact money, checked independently of the models: parses each account's CARR text in `raw.cs_accounts` "
        "in Python (Decimal; an amount is an optional leading '-', at most 16 digits and at most two decimals, "
        "anything else is no amount, and a negative amount is left out) and fails on every company whose CARR is "
        "another value, naming it: a lenient cast (1e3 read as 1000, 49999.995 rounded to 50000.00) or a float on "
        "the way (972765.41 becoming 972765.4375). Blocks both Gainsight syncs."
    ),
)
def company_carr_matches_source(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Recomputes each company's CARR from the raw text on purpose (`source_carr`), independent of the models."""
    import pandas as pd

    tally = ViolationTally()
    for frame in warehouse.get_warehouse().iter_batches(COMPANY_CARR_SQL, READ_BATCH_ROWS):
        for account_id, account_name, carr, carr_text in frame.itertuples(index=False, name=None):
            expected = source_carr(carr_text)
            actual = None if carr is None or pd.isna(carr) else Decimal(carr)
            if actual == expected:
                continue
            shown = "NULL" if carr_text is None or pd.isna(carr_text) else repr(carr_text)
            value = (
                f"{'NULL' if actual is None else actual} instead of {'NULL' if expected is None else expected} "
                f"(source {shown})"
            )
            tally.add(value, {"account_id": account_id, "account_name": account_name, "value": value})
    return tally.result(severity=dg.AssetCheckSeverity.ERROR, what="companies carry another CARR than the source text")


gainsight_company_sync_health = sync_health_check(
    asset="gainsight_company_sync",
    destination=COMPANIES.name,
    audience=COMPANY_AUDIENCE,
    what="Gainsight (Company upserts)",
    record_columns=("rejections.record_key", "audience.account_name"),
    labels=("account_id", "account_name", "reason"),
)
gainsight_person_sync_health = sync_health_check(
    asset="gainsight_person_sync",
    destination=PEOPLE.name,
    audience=PERSON_AUDIENCE,
    what="Gainsight (People upserts)",
    # the record key is `account_id:e-mail` (or `account_id:person-<id>` for a contact without one)
    record_columns=("split_part(rejections.record_key, ':', 1)", "split_part(rejections.record_key, ':', 2)"),
    labels=("account_id", "email", "reason"),
)


gainsight_company_change_guard = change_guard_check(
    name=GAINSIGHT_COMPANY_CHANGE_GUARD,
    asset=COMPANIES_KEY,
    destination=COMPANIES,
    what="the Gainsight Company push (`gainsight_company_sync`, and through it `gainsight_person_sync`)",
)
gainsight_person_change_guard = change_guard_check(
    name=GAINSIGHT_PERSON_CHANGE_GUARD,
    asset=RECIPIENTS_KEY,
    destination=PEOPLE,
    what="the Gainsight Person push (on the recipients, which both Gainsight syncs depend on)",
)
