"""Business-rule checks on the CRM records, the Initial Source history and the contacts mart.

Two layers:
- upstream violations (WARN, not blocking): the CRM broke a rule; the pipeline corrects it, people fix the source;
- our output (ERROR, blocking): the marts broke a rule; everything downstream of the checked asset is skipped.
  A blocking check reaches its verdict by another path than the model it guards (the merge checks resolve the
  merge chains themselves from the raw records, in `merge_resolution`).
"""

import dagster as dg

from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.rule_checks import Violation, dbt_project_var, rows_result, violations_result
from marketing_pipelines.defs.transform.merge_resolution import (
    BATCH_SIZE,
    merged_sets,
    oldest_initial_sources,
)
from marketing_pipelines.resources import WarehouseResource

CRM_RAW = dg.AssetKey(["raw", "crm_persons"])
CRM_PERSONS = dg.AssetKey(["staging", "stg_crm__persons"])
CRM_MERGED = dg.AssetKey(["staging", "int_crm_persons_merged"])
INITIAL_SOURCE_HISTORY = dg.AssetKey(["marts", "initial_source_history"])
MARKETING_CONTACTS = dg.AssetKey(["marts", "marketing_contacts"])

CRM_INITIAL_SOURCE_OVERWRITTEN = "crm_initial_source_overwritten"
CRM_INITIAL_SOURCE_UNKNOWN = "crm_initial_source_unknown"
CRM_LEAD_STATUS_UNKNOWN = "crm_lead_status_unknown"
CRM_MERGE_CYCLES = "crm_merge_cycles"
CRM_MERGE_DANGLING_TARGETS = "crm_merge_dangling_targets"
CRM_SELF_MERGES = "crm_self_merges"
CRM_PERSON_SCORE_INVALID = "crm_person_score_invalid"
INITIAL_SOURCE_IMMUTABLE = "initial_source_immutable"
INITIAL_SOURCE_ALLOWED = "initial_source_allowed"
EVERY_CRM_RECORD_IN_ONE_CONTACT = "every_crm_record_in_one_contact"
MERGE_KEEPS_OLDEST_INITIAL_SOURCE = "merge_keeps_oldest_initial_source"
LEAD_STATUS_ALLOWED = "lead_status_allowed"
MQL_MATCHES_SCORE = "mql_matches_score"

HISTORY_AUDIT_TABLE = "ops.initial_source_history_audit"
PRE_MQL_STATUSES = ("Raw", "Inquiry")  # statuses a person at the MQL score has left behind

WARN = dg.AssetCheckSeverity.WARN
ERROR = dg.AssetCheckSeverity.ERROR


# --- upstream violations: WARN ------------------------------------------------------------------------------

# Checks that read marts.initial_source_history do not list it in `additional_deps`: that would put them behind the
# blocking `initial_source_immutable`. They run after it is built all the same: the history is built in the same
# dbt step as stg_crm__persons, and before marketing_contacts.


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_INITIAL_SOURCE_OVERWRITTEN,
    description=(
        "GitLab Marketing Operations handbook, Initial Source: "
        "never changed once set. Warns on CRM record versions that carry another value after "
        "one was recorded; the recorded value is kept."
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


def raw_value_rejected(warehouse: WarehouseResource, raw: str, kept: str, what: str) -> dg.AssetCheckResult:
    """The CRM records whose `raw` value (stg_crm__persons) is not empty but left no `kept` value, as a WARN."""
    return violations_result(
        warehouse.get_warehouse(),
        f"""
        select distinct person_id, email, {raw} as value
        from staging.stg_crm__persons
        where nullif(trim({raw}), '') is not null
          and {kept} is null
        """,
        severity=WARN,
        what=what,
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_INITIAL_SOURCE_UNKNOWN,
    description=(
        "GitLab Marketing Operations handbook, Initial Source: "
        "only the values of dim_initial_source are allowed. Warns on CRM records carrying "
        "another value (after case/whitespace matching); such values never reach the marts."
    ),
)
def crm_initial_source_unknown(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return raw_value_rejected(
        warehouse,
        "raw_initial_source",
        "initial_source",
        "CRM records carry an Initial Source that is not in dim_initial_source",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_LEAD_STATUS_UNKNOWN,
    description=(
        "GitLab Marketing Operations handbook, lead and contact statuses: "
        "one of the ten statuses of dim_lead_status (matched ignoring case and spaces). Warns on "
        "CRM records carrying another status, with the raw value; the marts show NULL for it."
    ),
)
def crm_lead_status_unknown(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return raw_value_rejected(
        warehouse,
        "raw_lead_status",
        "lead_status",
        "CRM records carry a lead status that is not one of the ten statuses",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_PERSON_SCORE_INVALID,
    description=(
        "A person score is a whole number of zero or more. Warns on CRM records whose score is text or negative, "
        "with the raw value; the build goes on with no score (not an MQL) for them."
    ),
)
def crm_person_score_invalid(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return raw_value_rejected(
        warehouse,
        "raw_person_score",
        "person_score",
        "CRM records carry a person score that is not a whole number of zero or more",
    )


def merge_issue_result(warehouse: WarehouseResource, issue: str, value_sql: str, what: str) -> dg.AssetCheckResult:
    """The CRM records whose merge chain has `issue` (int_crm_persons_merged.merge_issue), as a WARN."""
    return violations_result(
        warehouse.get_warehouse(),
        f"""
        select person_id, email, {value_sql} as value
        from staging.int_crm_persons_merged
        where merge_issue = '{issue}'
        """,
        severity=WARN,
        what=what,
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_MERGE_CYCLES,
    additional_deps=[CRM_MERGED],
    description=(
        "Merges form chains, never cycles. Warns on CRM records merged in a cycle (A into B, B into A; or longer) "
        "or into a chain that runs into one; all of them live on as the cycle's lowest person id."
    ),
)
def crm_merge_cycles(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return merge_issue_result(
        warehouse,
        "cycle",
        "'merged into ' || cast(merged_into_person_id as varchar) || ', in a cycle: kept as '"
        " || cast(surviving_person_id as varchar)",
        "CRM records are merged in a cycle",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_MERGE_DANGLING_TARGETS,
    additional_deps=[CRM_MERGED],
    description=(
        "A record is merged into a record that exists. Warns on CRM records whose merge chain ends at a person id "
        "that does not exist; the last existing record of the chain survives."
    ),
)
def crm_merge_dangling_targets(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return merge_issue_result(
        warehouse,
        "dangling_target",
        "'chain ends at a missing record: kept as ' || cast(surviving_person_id as varchar)",
        "CRM records are merged into a person id that does not exist",
    )


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=CRM_PERSONS,
    name=CRM_SELF_MERGES,
    additional_deps=[CRM_MERGED],
    description="A record is never merged into itself. Warns on CRM records that are; each stays its own survivor.",
)
def crm_self_merges(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return merge_issue_result(warehouse, "self_merge", "'merged into itself'", "CRM records are merged into themselves")


# --- our output: ERROR, blocking ------------------------------------------------------------------------------


# On the history itself, built in the first dbt step: a failure holds back the second step (marketing_contacts and
# everything downstream), because blocking only holds back direct dependents of the checked asset.
@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=INITIAL_SOURCE_HISTORY,
    name=INITIAL_SOURCE_IMMUTABLE,
    blocking=True,
    description=(
        "GitLab Marketing Operations handbook, Initial Source: "
        "never changed or overwritten. Fails when the history lost or changed a row since the last passing "
        f"evaluation (kept in {HISTORY_AUDIT_TABLE}), naming each row as `old -> new`. Holds back "
        "marketing_contacts, so an edited history never reaches the contacts, the audiences or the syncs."
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
            case
                when history.person_id is null then audit.initial_source || ' -> <row deleted>'
                when history.initial_source is distinct from audit.initial_source
                    then audit.initial_source || ' -> ' || coalesce(history.initial_source, '<null>')
                else 'first seen ' || cast(audit.first_seen_at as varchar) || ' -> '
                    || coalesce(cast(history.first_seen_at as varchar), '<null>')
            end as value
        from {HISTORY_AUDIT_TABLE} as audit
        left join marts.initial_source_history as history on audit.person_id = history.person_id
        where history.person_id is null
           or history.initial_source is distinct from audit.initial_source
           or history.first_seen_at is distinct from audit.first_seen_at
        """,
        severity=ERROR,
        what="recorded Initial Source values were lost or changed in the history",
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
    description=(
        "GitLab Marketing Operations handbook, Initial Source: "
        "every contact's value is one of dim_initial_source or NULL. Blocks syncs."
    ),
)
def initial_source_allowed(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return value_outside_dimension(
        warehouse, "initial_source", "contacts have an Initial Source outside dim_initial_source"
    )


def value_outside_dimension(warehouse: WarehouseResource, column: str, what: str) -> dg.AssetCheckResult:
    """The contacts whose `column` is neither NULL nor a value of its dimension `marts.dim_<column>`, as an ERROR."""
    return violations_result(
        warehouse.get_warehouse(),
        f"""
        select contacts.person_id, contacts.email, contacts.{column} as value
        from marts.marketing_contacts as contacts
        left join marts.dim_{column} as dimension on contacts.{column} = dimension.{column}
        where contacts.{column} is not null
          and dimension.{column} is null
        """,
        severity=ERROR,
        what=what,
    )


CONTACTS_SQL = "select person_id, merged_record_count, initial_source from marts.marketing_contacts"


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=EVERY_CRM_RECORD_IN_ONE_CONTACT,
    blocking=True,
    additional_deps=[CRM_RAW],
    description=(
        "Every CRM record ends up in exactly one contact, however long, broken or circular its merge chain. "
        "Resolves the chains itself from raw.crm_persons (latest version of each record), on purpose independent "
        "of int_crm_persons_merged, and names the records "
        "in no contact, in a contact they do not survive as, or in a contact whose merged_record_count differs "
        "from its merged set. Blocks syncs."
    ),
)
def every_crm_record_in_one_contact(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Recomputes the merged sets from raw on purpose (`merge_resolution`), independent of the models."""
    import numpy as np

    db = warehouse.get_warehouse()
    sets = merged_sets(db)
    violations: list[Violation] = []
    seen = np.zeros(len(sets.set_ids), dtype=bool)
    for frame in db.iter_batches(CONTACTS_SQL, batch_size=BATCH_SIZE):
        contacts = frame["person_id"].to_numpy(dtype=np.int64)
        counts = frame["merged_record_count"].fillna(-1).to_numpy(dtype=np.int64)
        survivors, found = sets.survivor_of(contacts)
        sizes = sets.size_of(contacts)
        seen[np.searchsorted(sets.set_ids, contacts[found & (survivors == contacts)])] = True
        for row in np.flatnonzero(~found | (survivors != contacts) | (counts != sizes)):
            contact, survivor = int(contacts[row]), int(survivors[row])
            if not found[row]:
                violations.append((contact, None, "contact is no CRM record"))
            elif survivor != contact:
                violations.append((contact, None, f"in its own contact, but merged into {survivor}"))
            else:
                count = frame["merged_record_count"].iloc[row]
                violations.append((contact, None, f"contact holds {count} records, its merged set {sizes[row]}"))
    for survivor in sets.set_ids[~seen]:
        violations.extend(
            (member, None, f"in no contact (merged set of {survivor})") for member in sets.members(int(survivor))
        )
    return rows_result(violations, severity=ERROR, what="CRM records are not in exactly one contact")


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=MERGE_KEEPS_OLDEST_INITIAL_SOURCE,
    blocking=True,
    additional_deps=[CRM_RAW],
    description=(
        "GitLab Marketing Operations handbook, Initial Source: "
        "when records merge, the one set first wins, and a contact carries its history value. Resolves "
        "the merge chains itself from raw.crm_persons, takes the oldest value of each merged set from "
        "initial_source_history (in Python, on purpose independent of the model's SQL for the same rule) and "
        "names the contacts that carry another. Blocks syncs."
    ),
)
def merge_keeps_oldest_initial_source(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Recomputes "oldest Initial Source wins" from raw on purpose (`merge_resolution`), independent of the model."""
    import numpy as np

    db = warehouse.get_warehouse()
    sets = merged_sets(db)
    oldest = oldest_initial_sources(db, sets)
    violations: list[Violation] = []
    for frame in db.iter_batches(CONTACTS_SQL, batch_size=BATCH_SIZE):
        contacts = frame["person_id"].to_numpy(dtype=np.int64)
        survivors, found = sets.survivor_of(contacts)
        kept = np.flatnonzero(found & (survivors == contacts))  # the others: every_crm_record_in_one_contact
        expected, carriers = oldest.of(contacts[kept])
        actual = frame["initial_source"].iloc[kept].tolist()
        for row, want, carrier, have in zip(kept, expected, carriers, actual, strict=True):
            have = None if have is None or have != have else have
            if have != want:
                where = f" (record {carrier})" if carrier is not None else ""
                violations.append((int(contacts[row]), None, f"{have or '<null>'} != oldest {want or '<null>'}{where}"))
    return rows_result(violations, severity=ERROR, what="contacts do not keep their merged set's oldest Initial Source")


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=LEAD_STATUS_ALLOWED,
    blocking=True,
    description=(
        "GitLab Marketing Operations handbook, lead and contact statuses: "
        "every contact's status is one of the ten or NULL. Blocks syncs."
    ),
)
def lead_status_allowed(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return value_outside_dimension(warehouse, "lead_status", "contacts have a lead status outside dim_lead_status")


@dg.asset_check(
    pool=WAREHOUSE_POOL,
    asset=MARKETING_CONTACTS,
    name=MQL_MATCHES_SCORE,
    description=(
        "GitLab Marketing Operations handbook, Marketing Qualified Lead (100 points): a person becomes an MQL at "
        "the score the dbt var `mql_score_threshold` sets (in dbt_project.yml). Warns on "
        "contacts whose CRM lead status is MQL with a score under it, and on contacts at it or more still in Raw or "
        "Inquiry. Iterable then gets the CRM's status as leadStatus and isMql from the score. Takes the score rule "
        "from the contacts' `is_mql` (what Iterable gets as isMql), so it is written once, in the model."
    ),
)
def mql_matches_score(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    pre_mql = ", ".join(f"'{status}'" for status in PRE_MQL_STATUSES)
    threshold = dbt_project_var("mql_score_threshold")
    return violations_result(
        warehouse.get_warehouse(),
        f"""
        select
            person_id,
            email,
            'status ' || lead_status || ', score ' || coalesce(cast(person_score as varchar), '<none>') as value
        from marts.marketing_contacts
        where (lead_status = 'MQL' and not is_mql)
           or (lead_status in ({pre_mql}) and is_mql)
        """,
        severity=WARN,
        what=f"contacts whose lead status disagrees with the {threshold}-point MQL score",
    )
