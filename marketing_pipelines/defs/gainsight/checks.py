"""Checks that guard the Customer Programs push (seed 004; DESIGN 6, rule 6).

`sold_to_never_surveyed` and `recipient_roles_valid` are ERROR and blocking on the recipients: both Gainsight syncs
depend on that asset directly, so a failure stops every push. `every_program_account_has_a_recipient` only warns.
"""

import dagster as dg

from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.destinations import rejection_backlog_check
from marketing_pipelines.defs.gainsight.assets import COMPANIES_KEY, RECIPIENTS_KEY
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.defs.transform.rule_checks import violations_result
from marketing_pipelines.sync.gainsight import COMPANIES, COMPANY_AUDIENCE, PEOPLE, PERSON_AUDIENCE

SOLD_TO_NEVER_SURVEYED = "sold_to_never_surveyed"
RECIPIENT_ROLES_VALID = "recipient_roles_valid"
EVERY_PROGRAM_ACCOUNT_HAS_A_RECIPIENT = "every_program_account_has_a_recipient"
GAINSIGHT_COMPANY_REJECTION_BACKLOG = "gainsight_company_rejection_backlog"
GAINSIGHT_PERSON_REJECTION_BACKLOG = "gainsight_person_rejection_backlog"

#: The only reasons a person may receive a program, and the contact role or access level each one requires.
REASON_ROLES = {
    "gitlab_admin": "GitLab Admin",
    "sold_to_fallback": "Sold-To",
    "saas_owner": "Owner",
    "saas_maintainer": "Maintainer",
}


@dg.asset_check(
    asset=RECIPIENTS_KEY,
    name=SOLD_TO_NEVER_SURVEYED,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description=(
        "Seed 004: a Sold-To contact gets program communications but never NPS or CSAT surveys. Fails on any "
        "recipient allowed surveys who was chosen as the Sold-To fallback, or who is a Sold-To (and not a GitLab "
        "Admin) contact of the account. Blocks both Gainsight syncs."
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
        "Seed 004: every recipient was chosen for one of four reasons, with the matching role: gitlab_admin "
        "(GitLab Admin contact), sold_to_fallback (Sold-To contact, only on accounts without a GitLab Admin), "
        "saas_owner / saas_maintainer (Owner / Maintainer of a SaaS account's namespace). Blocks both syncs."
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
               recipients.recipient_reason = 'sold_to_fallback'
               and exists (
                   select 1 from staging.stg_cs__contacts as admins
                   where admins.account_id = recipients.account_id and admins.gitlab_role = 'GitLab Admin'
               )
           )
        """,
        severity=dg.AssetCheckSeverity.ERROR,
        what="recipients have a reason outside the four allowed, or a role that does not match it",
    )


@dg.asset_check(
    asset=COMPANIES_KEY,
    name=EVERY_PROGRAM_ACCOUNT_HAS_A_RECIPIENT,
    pool=WAREHOUSE_POOL,
    description=(
        "Seed 004: configuring a GitLab Admin contact is a required step of the sales process. Warns on program "
        "accounts that have neither a GitLab Admin nor a Sold-To contact, naming them, so CS Ops can add one."
    ),
)
def every_program_account_has_a_recipient(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select account_id as person_id, account_name as email, program as value
        from audiences.gainsight_program_companies
        where admin_contact_count = 0 and sold_to_contact_count = 0
        """,
        severity=dg.AssetCheckSeverity.WARN,
        what="program accounts have neither a GitLab Admin nor a Sold-To contact",
        labels=("account_id", "account_name", "value"),
    )


gainsight_company_rejection_backlog = rejection_backlog_check(
    name=GAINSIGHT_COMPANY_REJECTION_BACKLOG,
    asset="gainsight_company_sync",
    destination=COMPANIES.name,
    audience=COMPANY_AUDIENCE,
    what="Gainsight (Company upserts)",
    record_columns=("rejections.record_key", "audience.account_name"),
    labels=("account_id", "account_name", "reason"),
)
gainsight_person_rejection_backlog = rejection_backlog_check(
    name=GAINSIGHT_PERSON_REJECTION_BACKLOG,
    asset="gainsight_person_sync",
    destination=PEOPLE.name,
    audience=PERSON_AUDIENCE,
    what="Gainsight (People upserts)",
    # the record key is `account_id:e-mail` (or `account_id:person-<id>` for a contact without one)
    record_columns=("split_part(rejections.record_key, ':', 1)", "split_part(rejections.record_key, ':', 2)"),
    labels=("account_id", "email", "reason"),
)
