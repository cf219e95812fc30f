"""Business-rule checks on the marts (DESIGN 6, rules 1-2; seed 001).

Two layers:
- upstream violations (WARN, not blocking): the CRM broke a rule; the pipeline corrects it, people fix the source;
- our output (ERROR, blocking): the marts broke a rule; the audiences and every sync downstream are skipped.
"""

import dagster as dg

from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.defs.transform.rule_checks import violations_result

CRM_PERSONS = dg.AssetKey(["staging", "stg_crm__persons"])
INITIAL_SOURCE_HISTORY = dg.AssetKey(["marts", "initial_source_history"])
MARKETING_CONTACTS = dg.AssetKey(["marts", "marketing_contacts"])

CRM_INITIAL_SOURCE_OVERWRITTEN = "crm_initial_source_overwritten"
CRM_INITIAL_SOURCE_UNKNOWN = "crm_initial_source_unknown"
CRM_LEAD_STATUS_UNKNOWN = "crm_lead_status_unknown"
INITIAL_SOURCE_IMMUTABLE = "initial_source_immutable"
INITIAL_SOURCE_ALLOWED = "initial_source_allowed"
MERGE_KEEPS_OLDEST_INITIAL_SOURCE = "merge_keeps_oldest_initial_source"
LEAD_STATUS_ALLOWED = "lead_status_allowed"
MQL_MATCHES_SCORE = "mql_matches_score"

HISTORY_AUDIT_TABLE = "ops.initial_source_history_audit"
MQL_SCORE_THRESHOLD = 100  # seed 001; the dbt var `mql_score_threshold` holds the same number

WARN = dg.AssetCheckSeverity.WARN
ERROR = dg.AssetCheckSeverity.ERROR


# --- upstream violations: WARN ------------------------------------------------------------------------------


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_INITIAL_SOURCE_OVERWRITTEN,
    additional_deps=[INITIAL_SOURCE_HISTORY],
    description=(
        "Seed 001: Initial Source is never changed once set. Warns on CRM record versions that carry another "
        "value after one was recorded; the recorded value is kept."
    ),
)
def crm_initial_source_overwritten(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select distinct
            versions.person_id,
            versions.email,
            history.initial_source || ' -> ' || trim(versions.raw_initial_source) as value
        from staging.stg_crm__persons as versions
        inner join marts.initial_source_history as history on versions.person_id = history.person_id
        where versions.updated_at > history.first_seen_at
          and nullif(trim(versions.raw_initial_source), '') is not null
          and lower(trim(coalesce(versions.initial_source, versions.raw_initial_source)))
              <> lower(history.initial_source)
        """,
        severity=WARN,
        what="CRM record versions tried to overwrite a recorded Initial Source",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_INITIAL_SOURCE_UNKNOWN,
    description=(
        "Seed 001: only the values of dim_initial_source are allowed. Warns on CRM records carrying another "
        "value (after case/whitespace matching); such values never reach the marts."
    ),
)
def crm_initial_source_unknown(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select distinct person_id, email, raw_initial_source as value
        from staging.stg_crm__persons
        where nullif(trim(raw_initial_source), '') is not null
          and initial_source is null
        """,
        severity=WARN,
        what="CRM records carry an Initial Source that is not in dim_initial_source",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_LEAD_STATUS_UNKNOWN,
    description="Seed 001: lead status is one of ten statuses. Warns on CRM records carrying another status.",
)
def crm_lead_status_unknown(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select distinct persons.person_id, persons.email, persons.lead_status as value
        from staging.stg_crm__persons as persons
        left join marts.dim_lead_status as statuses on persons.lead_status = statuses.lead_status
        where persons.lead_status is not null
          and statuses.lead_status is null
        """,
        severity=WARN,
        what="CRM records carry a lead status that is not one of the ten statuses",
    )


# --- our output: ERROR, blocking ------------------------------------------------------------------------------


# Attached to marketing_contacts, the asset that carries the Initial Source to the audiences, so that a
# failure blocks them: blocking only holds back direct dependents of the checked asset.
@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=INITIAL_SOURCE_IMMUTABLE,
    blocking=True,
    additional_deps=[INITIAL_SOURCE_HISTORY],
    description=(
        "Seed 001: Initial Source is never changed. Fails when the history lost or changed a row since the "
        f"last passing evaluation (kept in {HISTORY_AUDIT_TABLE}), or a contact's source differs from its "
        "history value. Blocks the audiences and syncs."
    ),
)
def initial_source_immutable(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    db = warehouse.get_warehouse()
    db.execute(
        [
            "create schema if not exists ops",
            f"create table if not exists {HISTORY_AUDIT_TABLE} ("
            "person_id bigint, initial_source varchar, first_seen_at timestamp, audited_at timestamp)",
        ]
    )
    result = violations_result(
        db,
        f"""
        select
            audit.person_id,
            cast(null as varchar) as email,
            'history ' || audit.initial_source || ' -> ' || coalesce(history.initial_source, '<row deleted>')
                as value
        from {HISTORY_AUDIT_TABLE} as audit
        left join marts.initial_source_history as history on audit.person_id = history.person_id
        where history.person_id is null
           or history.initial_source is distinct from audit.initial_source
           or history.first_seen_at is distinct from audit.first_seen_at
        union all
        select
            contacts.person_id,
            contacts.email,
            'contact ' || coalesce(contacts.initial_source, '<null>')
                || ' != history ' || coalesce(expected.initial_source, '<null>') as value
        from marts.marketing_contacts as contacts
        left join (
            select merged.surviving_person_id, history.initial_source
            from staging.int_crm_persons_merged as merged
            inner join marts.initial_source_history as history on merged.person_id = history.person_id
            qualify row_number() over (
                partition by merged.surviving_person_id order by history.first_seen_at, history.person_id
            ) = 1
        ) as expected on contacts.person_id = expected.surviving_person_id
        where contacts.initial_source is distinct from expected.initial_source
        """,
        severity=ERROR,
        what="Initial Source values were lost or changed",
    )
    if result.passed:
        db.execute(
            f"""
            insert into {HISTORY_AUDIT_TABLE}
            select history.person_id, history.initial_source, history.first_seen_at, current_timestamp
            from marts.initial_source_history as history
            where not exists (select 1 from {HISTORY_AUDIT_TABLE} as audit where audit.person_id = history.person_id)
            """
        )
    return result


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=INITIAL_SOURCE_ALLOWED,
    blocking=True,
    description="Seed 001: every contact's Initial Source is a value of dim_initial_source or NULL. Blocks syncs.",
)
def initial_source_allowed(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select contacts.person_id, contacts.email, contacts.initial_source as value
        from marts.marketing_contacts as contacts
        left join marts.dim_initial_source as sources on contacts.initial_source = sources.initial_source
        where contacts.initial_source is not null
          and sources.initial_source is null
        """,
        severity=ERROR,
        what="contacts have an Initial Source outside dim_initial_source",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=MERGE_KEEPS_OLDEST_INITIAL_SOURCE,
    blocking=True,
    description=(
        "Seed 001: when records merge, the Initial Source set first wins. Recomputes the oldest known value of "
        "every merged set from the CRM versions and compares. Blocks syncs."
    ),
)
def merge_keeps_oldest_initial_source(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        with oldest as (
            select merged.surviving_person_id, versions.initial_source
            from staging.stg_crm__persons as versions
            inner join staging.int_crm_persons_merged as merged on versions.person_id = merged.person_id
            where versions.initial_source is not null
            qualify row_number() over (
                partition by merged.surviving_person_id order by versions.updated_at, versions.person_id
            ) = 1
        )
        select
            contacts.person_id,
            contacts.email,
            coalesce(contacts.initial_source, '<null>') || ' != oldest ' || coalesce(oldest.initial_source, '<null>')
                as value
        from marts.marketing_contacts as contacts
        left join oldest on contacts.person_id = oldest.surviving_person_id
        where contacts.merged_record_count > 1
          and contacts.initial_source is distinct from oldest.initial_source
        """,
        severity=ERROR,
        what="merged contacts do not keep the oldest Initial Source",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=LEAD_STATUS_ALLOWED,
    blocking=True,
    description="Seed 001: every contact's lead status is one of the ten statuses or NULL. Blocks syncs.",
)
def lead_status_allowed(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select contacts.person_id, contacts.email, contacts.lead_status as value
        from marts.marketing_contacts as contacts
        left join marts.dim_lead_status as statuses on contacts.lead_status = statuses.lead_status
        where contacts.lead_status is not null
          and statuses.lead_status is null
        """,
        severity=ERROR,
        what="contacts have a lead status outside dim_lead_status",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=MQL_MATCHES_SCORE,
    description="Seed 001: a person is an MQL exactly when the person score reached 100 points.",
)
def mql_matches_score(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        f"""
        select
            person_id,
            email,
            'score ' || coalesce(cast(person_score as varchar), '<null>')
                || ', is_mql ' || cast(is_mql as varchar) as value
        from marts.marketing_contacts
        where is_mql is distinct from coalesce(person_score >= {MQL_SCORE_THRESHOLD}, false)
        """,
        severity=WARN,
        what="contacts whose MQL flag disagrees with the 100-point score",
    )
