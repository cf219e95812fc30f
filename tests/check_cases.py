"""One way to break every asset check: the broken warehouse `test_every_check_fails.py` builds and evaluates.

A `Breakage` is one defect put into the warehouse, either as hand-made raw rows (loaded before dbt builds, so the
real models carry it) or as a change to a built relation. A `Case` names the breakages that must make one check
fail. Raw rows are preferred; a built relation is changed only where no raw row can reach the rule (the model
itself guarantees it), and the breakage says why: such a check guards the model code, not the data.

Adding an asset check means adding its `Case` here (`test_every_check_has_a_case` names the ones missing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

from marketing_pipelines.sync import Outbox, run_sync
from marketing_pipelines.sync.gainsight import COMPANIES
from marketing_pipelines.sync.iterable import USERS
from marketing_pipelines.sync.ops_tables import ensure_ops_tables
from marketing_pipelines.warehouse import DuckDBWarehouse

Tamper = Callable[[DuckDBWarehouse], None]
CheckId = tuple[str, str]
"""(asset key as `a/b`, check name): the `AssetCheckKey` in words."""

TODAY = date.today()
# The warehouse is built with a reference date five months old, as a backfill with a stale `as_of_date` would be:
# every user inside the model's two-month window is then older than two months today.
AS_OF = TODAY - timedelta(days=150)
RECENT = datetime.combine(AS_OF - timedelta(days=10), datetime.min.time())


@dataclass(frozen=True)
class Breakage:
    """One defect: raw rows loaded before dbt builds, or `tamper` run on the built warehouse.

    `stage` says when a tampering runs: "python" before the Python checks are evaluated, "dbt" only after them
    (just before `dbt test`), so that NULL or duplicate rows meant for a dbt test do not also trip a Python check.
    """

    why: str
    raw: Mapping[str, list[dict[str, Any]]] = field(default_factory=dict)
    tamper: Tamper | None = None
    stage: Literal["raw", "config", "python", "dbt"] = "raw"
    unreachable: str = ""
    """Why no raw row can break the rule (required for a tampering or a configuration breakage)."""


@dataclass(frozen=True)
class Case:
    """The breakages that must make one check fail; `xfail` names a check that cannot fail today, and why."""

    breakages: tuple[str, ...]
    xfail: str = ""


# --- tampering helpers --------------------------------------------------------------------------------------------


def sql(*statements: str) -> Tamper:
    """Tampering by plain SQL statements."""
    return lambda warehouse: warehouse.execute(list(statements))


def append(relation: str, select: str) -> Tamper:
    """Add the rows of `select` to a built table, or to a view (renamed, then re-created with the rows added).

    In `select`, `{built}` names the relation as dbt built it (to copy one of its rows as a duplicate).
    """

    def tamper(warehouse: DuckDBWarehouse) -> None:
        schema, name = relation.split(".")
        ((is_view,),) = warehouse.query(
            "select count(*) from duckdb_views() where schema_name = ? and view_name = ?", [schema, name]
        )
        if not is_view:
            warehouse.execute(f"insert into {relation} by name {select.format(built=relation)}")
            return
        ((earlier,),) = warehouse.query(  # a view tampered before keeps each earlier form under its own name
            "select count(*) from duckdb_views() where schema_name = ? and view_name like ?", [schema, f"{name}__%"]
        )
        renamed = f"{name}__as_built" + (f"_{earlier}" if earlier else "")
        built = f"{schema}.{renamed}"
        warehouse.execute(
            [
                f"alter view {relation} rename to {renamed}",
                f"create view {relation} as select * from {built} union all by name {select.format(built=built)}",
            ]
        )

    return tamper


def record_iterable_rejections(warehouse: DuckDBWarehouse) -> None:
    """A real dry-run Iterable sync: audience rows that cannot become a user object land in ops.sync_rejections."""
    run_sync(warehouse, USERS, Outbox(), run_id="check-breakers")


def record_gainsight_rejections(warehouse: DuckDBWarehouse) -> None:
    """A real dry-run Gainsight company sync: companies with a `skip_reason` land in ops.sync_rejections."""
    run_sync(warehouse, COMPANIES, Outbox(), run_id="check-breakers")


#: Destinations whose audiences the broken warehouse gives no record a dry run would refuse.
LIVE_REJECTION_DESTINATIONS = (
    "iterable_unsubscribes",
    "iterable_signup_profiles",
    "iterable_trial_events",
    "gainsight_people",
)


def record_live_rejections(warehouse: DuckDBWarehouse) -> None:
    """One unresolved rejection per destination whose audience a dry run refuses nothing of, as a live sync writes."""
    warehouse.execute(
        [
            "insert into ops.sync_rejections values "
            f"('{name}', 'rejected-{name}', '{{}}', 'refused alone with HTTP 400: BadParams', "
            "current_timestamp, current_timestamp, 1, false, null)"
            for name in LIVE_REJECTION_DESTINATIONS
        ]
    )


#: Destinations the runaway-change guard protects (their audiences' blocking guard checks).
GUARDED_DESTINATIONS = ("iterable_users", "gainsight_companies", "gainsight_people")


def record_synced_records_gone(warehouse: DuckDBWarehouse) -> None:
    """Ten records each guarded destination accepted in an earlier run, none of them in today's audience: a push
    now would remove every synced record."""
    ensure_ops_tables(warehouse)
    warehouse.execute(
        [
            "insert into ops.sync_state (destination, record_key, payload_hash, synced_at, run_id) "
            f"select '{name}', 'gone-{name}-' || cast(i as varchar), 'hash', current_timestamp, 'earlier-run' "
            "from range(10) as t(i)"
            for name in GUARDED_DESTINATIONS
        ]
    )


# --- raw rows -----------------------------------------------------------------------------------------------------


def person(person_id: int | None, updated_at: str = "2025-01-01", source: str | None = None, **fields: Any) -> dict:
    row = {
        "person_id": person_id,
        "email": f"person{person_id}@example.com",
        "record_type": "lead",
        "status": "Inquiry",
        "initial_source": source,
        "person_score": "10",  # text, as the CRM exports it
        "created_at": datetime(2025, 1, 1),
        "updated_at": datetime.fromisoformat(updated_at),
    }
    return {**row, **fields}


def account(account_id: int | None, **fields: Any) -> dict:
    row = {
        "account_id": account_id,
        "account_name": f"Account {account_id}",
        "carr": "25000",
        "deployment_type": "Self-Managed",
        "created_at": datetime(2024, 1, 1),
        "renewal_date": AS_OF + timedelta(days=365),
    }
    return {**row, **fields}


def contact(account_id: int | None, person_id: int | None, role: str, email: str | None = "") -> dict:
    email = f"contact{person_id}@example.com" if email == "" else email
    return {"account_id": account_id, "person_id": person_id, "email": email, "gitlab_role": role}


def event(event_id: str | None, email: str | None = "", **fields: Any) -> dict:
    email = f"{event_id}@example.com" if email == "" else email
    return {"event_id": event_id, "email": email, "occurred_at": RECENT, "company_namespace": True, **fields}


def user(user_id: int | None, email: str, created_at: datetime = RECENT) -> dict:
    return {"user_id": user_id, "email": email, "created_at": created_at}


NAMESPACE = 100
DUPLICATED_NAMESPACE = 200

BREAKAGES: dict[str, Breakage] = {
    # CRM
    "crm_source_overwritten": Breakage(
        "person 1's CRM record changes its Initial Source from Demo to Webcast a month after it was set",
        raw={"crm_persons": [person(1, "2025-01-01", "Demo"), person(1, "2025-02-01", "Webcast")]},
    ),
    "crm_unknown_values": Breakage(
        "the CRM sends an Initial Source (Linkedin Ads) and a lead status (Recycled) that are not allowed",
        raw={"crm_persons": [person(2, source="Linkedin Ads"), person(3, status="Recycled")]},
    ),
    "mql_status_disagrees_with_score": Breakage(
        "lead status MQL with a score of 40; scores of 150 with status Raw and Inquiry",
        raw={
            "crm_persons": [
                person(4, status="MQL", person_score="40"),
                person(5, status="Raw", person_score="150"),
                person(6, status="Inquiry", person_score="150"),
            ]
        },
    ),
    "crm_merge_shapes": Breakage(
        "persons 20 and 21 are merged into each other; 22 into person 999, who does not exist; 23 into itself",
        raw={
            "crm_persons": [
                person(20, merged_into_person_id=21),
                person(21, merged_into_person_id=20),
                person(22, merged_into_person_id=999),
                person(23, merged_into_person_id=23),
            ]
        },
    ),
    "crm_score_not_a_number": Breakage(
        "person 24's score arrives as 'n/a' and person 25's as '-5'",
        raw={"crm_persons": [person(24, person_score="n/a"), person(25, person_score="-5")]},
    ),
    "merge_chain_past_the_bound": Breakage(
        "persons 2000 -> 2001 -> ... -> 2101 form a merge chain of 102 records, longer than the dbt var "
        "crm_merge_max_depth (100) lets the model follow: the model stops early, the check follows it to the end",
        raw={"crm_persons": [person(2000 + i, merged_into_person_id=2001 + i) for i in range(101)] + [person(2101)]},
    ),
    "crm_bad_keys": Breakage(
        "a CRM record without an id, and person 9's version landed twice with the same updated_at",
        raw={"crm_persons": [person(None), person(9), person(9)]},
    ),
    "merged_set": Breakage(
        "person 7 (Webcast, January) is merged into person 8 (Demo, June): the merged contact must say Webcast",
        raw={
            "crm_persons": [
                person(7, "2025-01-01", "Webcast", merged_into_person_id=8),
                person(8, "2025-06-01", "Demo"),
            ]
        },
    ),
    "merged_contact_loses_oldest_source": Breakage(
        "the merged contact 8 carries Demo instead of its set's oldest value Webcast",
        tamper=sql("update marts.marketing_contacts set initial_source = 'Demo' where person_id = 8"),
        stage="python",
        unreachable=(
            "the model and the check take the oldest value of the same history rows for each merged set; they part "
            "only when the model's merge walk or its history join goes wrong, which no raw row can make it do"
        ),
    ),
    "history_rewritten": Breakage(
        "after a passing evaluation recorded person 13's Initial Source (Partner), the history table is rewritten to "
        "Webcast, as a hand-made full refresh would",
        raw={"crm_persons": [person(13, source="Partner")]},
        tamper=sql("update marts.initial_source_history set initial_source = 'Webcast' where person_id = 13"),
        stage="python",
        unreachable="the history model appends only and never rewrites a row",
    ),
    "contact_outside_dimensions": Breakage(
        "contact 2 carries the Initial Source Linkedin Ads and the status Recycled",
        tamper=sql(
            "update marts.marketing_contacts set initial_source = 'Linkedin Ads', lead_status = 'Recycled' "
            "where person_id = 2"
        ),
        stage="python",
        unreachable="the model takes both values from the dimension tables (an unknown value becomes NULL)",
    ),
    # Iterable users
    "opted_out_person_in_audience": Breakage(
        "persons 10 and 12 share the e-mail shared@; person 11 (gone@, unsubscribed) is merged into 10, so 10 is "
        "opted out; a row for shared@ and one for gone@ are then added to the built audience",
        raw={
            "crm_persons": [
                person(10, email="shared@example.com"),
                person(11, email="gone@example.com", merged_into_person_id=10),
                person(12, "2025-05-01", email="shared@example.com"),
            ],
            "marketo_unsubscribes": [{"event_id": "e1", "email": "gone@example.com", "unsubscribed_at": RECENT}],
            # user 2 is an ordinary audience member, so the audience's own tests have a row to duplicate
            "gitlab_users": [user(1, "shared@example.com"), user(2, "member@example.com")],
            "gitlab_namespaces": [{"namespace_id": NAMESPACE, "namespace_name": "acme", "created_at": RECENT}],
            "gitlab_members": [
                {"namespace_id": NAMESPACE, "user_id": 1, "access_level": 50},
                {"namespace_id": NAMESPACE, "user_id": 2, "access_level": 30},
            ],
        },
        tamper=append(
            "audiences.iterable_user_audience",
            "select email, '1' as user_id, 12 as person_id, current_timestamp as user_created_at, "
            "'{{}}' as data_fields from (values ('shared@example.com'), ('gone@example.com')) as added(email)",
        ),
        stage="python",
        unreachable="the model leaves out every e-mail an opted-out contact carries or Marketo unsubscribed",
    ),
    "user_email_invalid": Breakage(
        "a GitLab user whose e-mail is 'not an email', a member of a namespace: it reaches the Iterable audience",
        raw={
            "gitlab_users": [user(2, "not an email")],
            "gitlab_members": [{"namespace_id": NAMESPACE, "user_id": 2, "access_level": 30}],
        },
    ),
    "stale_as_of_date": Breakage(
        f"the warehouse is built with as_of_date {AS_OF}, five months ago (a backfill): the users of its two-month "
        "window are older than two months today",
        stage="config",
        unreachable="the model keeps only users created within two months of its reference date",
    ),
    "raw_sources_not_arriving": Breakage(
        f"the raw rows are dated around {AS_OF}, five months ago, and no observation of this run recorded a newer "
        "landing: the upstream tools stopped landing rows",
        stage="config",
        unreachable="the check reads the instance's latest observation of the raw table, not a warehouse row",
    ),
    "iterable_rejections": Breakage(
        "a real dry-run sync of the audience records the invalid e-mail as rejected in ops.sync_rejections",
        tamper=record_iterable_rejections,
        stage="python",
        unreachable="the backlog is written by the sync, not landed: the real sync engine writes it here",
    ),
    "gainsight_rejections": Breakage(
        "real dry-run Gainsight syncs record the companies and people skipped for bad input in ops.sync_rejections",
        tamper=record_gainsight_rejections,
        stage="python",
        unreachable="the backlog is written by the sync, not landed: the real sync engine writes it here",
    ),
    "live_rejections": Breakage(
        "an unresolved rejection for each of the unsubscribe, signup profile, trial event and Gainsight people "
        "destinations",
        tamper=record_live_rejections,
        stage="python",
        unreachable="the backlog is written by a live sync when the destination refuses a record; a dry run "
        "refuses none of "
        "these audiences' rows, so the rows a live sync writes are inserted",
    ),
    "synced_records_gone": Breakage(
        "ten records each of the Iterable users, Gainsight companies and Gainsight people destinations accepted "
        "earlier are no longer in their audiences: every synced record would be removed",
        tamper=record_synced_records_gone,
        stage="python",
        unreachable="what a destination accepted is written by the sync, not landed: those rows are inserted into "
        "ops.sync_state as a live sync writes them",
    ),
    # GitLab, Marketo raw keys
    "gitlab_bad_keys": Breakage(
        "a GitLab user and a namespace without ids; user 3, namespace 200 and a membership landed twice; a "
        "membership with access level 35, which does not exist",
        raw={
            "gitlab_users": [user(None, "noid@example.com")] + [user(3, "dup@example.com", datetime(2020, 1, 1))] * 2,
            "gitlab_namespaces": [{"namespace_id": None}]
            + [{"namespace_id": DUPLICATED_NAMESPACE, "namespace_name": "twice"}] * 2,
            "gitlab_members": [{"namespace_id": DUPLICATED_NAMESPACE, "user_id": 4, "access_level": 30}] * 2
            + [{"namespace_id": DUPLICATED_NAMESPACE, "user_id": 5, "access_level": 35}],
        },
    ),
    "marketo_bad_keys": Breakage(
        "a Marketo unsubscribe without an event id, and event e2 landed twice",
        raw={
            "marketo_unsubscribes": [
                {"event_id": None, "email": "noid@example.com", "unsubscribed_at": RECENT},
                {"event_id": "e2", "email": "twice@example.com", "unsubscribed_at": RECENT},
                {"event_id": "e2", "email": "twice@example.com", "unsubscribed_at": RECENT},
            ]
        },
    ),
    # Customer Programs
    "program_accounts": Breakage(
        "account 1 has a GitLab Admin, account 2 only a Sold-To contact, account 3 no contact at all",
        raw={
            "cs_accounts": [account(1), account(2), account(3)],
            "cs_contacts": [contact(1, 101, "GitLab Admin"), contact(2, 201, "Sold-To")],
        },
    ),
    "cs_bad_rows": Breakage(
        "account 4 landed twice; account 5 has no name; account 6 is 'On-Prem'; an account without an id; contact "
        "102 of account 1 landed twice; a GitLab Admin of account 1 with neither a person id nor an e-mail",
        raw={
            "cs_accounts": [
                account(4),
                account(4),
                account(5, account_name=None),
                account(6, deployment_type="On-Prem"),
                account(None),
            ],
            "cs_contacts": [contact(4, 401, "GitLab Admin"), contact(5, 501, "GitLab Admin")]
            + [contact(1, 102, "GitLab Admin")] * 2
            + [contact(1, None, "GitLab Admin", None)],
        },
    ),
    "sold_to_surveyed": Breakage(
        "account 2's Sold-To fallback recipient is allowed surveys",
        tamper=sql(
            "update audiences.gainsight_program_recipients set receives_surveys = true "
            "where recipient_reason = 'sold_to_fallback' and account_id = 2"
        ),
        stage="python",
        unreachable=(
            "the model allows surveys to GitLab Admin recipients only, and each has an Admin contact with its e-mail"
        ),
    ),
    "recipient_reason_unknown": Breakage(
        "account 1's GitLab Admin is listed for the reason 'marketing_lead'",
        tamper=sql(
            "update audiences.gainsight_program_recipients set recipient_reason = 'marketing_lead' "
            "where person_id = 101"
        ),
        stage="python",
        unreachable="the model sets the reason from the role or access level it selected the person by",
    ),
    "admin_unconfirmed": Breakage(
        "account 9's Sold-To contact 902 is listed as a GitLab Admin (reason gitlab_admin, role GitLab Admin), which "
        "no GitLab Admin row of stg_cs__contacts confirms",
        tamper=sql(
            "update audiences.gainsight_program_recipients "
            "set recipient_reason = 'gitlab_admin', role = 'GitLab Admin' where person_id = 902"
        ),
        stage="python",
        unreachable=(
            "the model lists a contact as gitlab_admin only from a GitLab Admin row of stg_cs__contacts, the rows the "
            "check confirms it with"
        ),
    ),
    "carr_not_an_amount": Breakage(
        "account 7's CARR arrives as 'n/a' and account 8's as '-1200.50' (each has a GitLab Admin)",
        raw={
            "cs_accounts": [account(7, carr="n/a"), account(8, carr="-1200.50")],
            "cs_contacts": [contact(7, 701, "GitLab Admin"), contact(8, 801, "GitLab Admin")],
        },
    ),
    "several_sold_to": Breakage(
        "account 9 has no GitLab Admin and two Sold-To contacts (901, 902)",
        raw={"cs_accounts": [account(9)], "cs_contacts": [contact(9, 901, "Sold-To"), contact(9, 902, "Sold-To")]},
    ),
    "company_carr_drifts": Breakage(
        "account 10 (a TAM, CARR 972765.41) is pushed with CARR 972765.44: the amount through a float32 "
        "(972765.4375), rounded to the cent",
        raw={
            "cs_accounts": [account(10, carr="972765.41", technical_account_manager="Ada Lovelace")],
            "cs_contacts": [contact(10, 1001, "GitLab Admin")],
        },
        tamper=sql("update audiences.gainsight_program_companies set carr = 972765.44 where account_id = 10"),
        stage="python",
        unreachable=(
            "the check parses the raw CARR text itself (Python Decimal and its own pattern of the amount rule) and the "
            "model follows the same rule in SQL; they part only when the model's parsing, cast or column type changes "
            "(a lenient cast, a float on the way), which no raw row can do"
        ),
    ),
    "company_segment_wrong": Breakage(
        "account 10, which has a TAM (CSM-Managed), is pushed in the Tech Touch segment",
        tamper=sql("update audiences.gainsight_program_companies set segment = 'Tech Touch' where account_id = 10"),
        stage="python",
        unreachable=(
            "the model and the check derive the segment from the same staging columns (TAM, CARR) and the threshold "
            "dbt_project.yml sets, and the model keeps every staged account; they part only when the model's rule "
            "changes or a run overrides the threshold var"
        ),
    ),
    # Signups
    "signup_bad_rows": Breakage(
        "in both event tables: an event without an id, one without an e-mail, one without a time, one landed twice",
        raw={
            table: [event(f"{prefix}1")]
            + [event(None, "noid@example.com"), event(f"{prefix}3", None), event(f"{prefix}4", occurred_at=None)]
            + [event(f"{prefix}2")] * 2
            for table, prefix in (("trial_signup_events", "t"), ("free_registration_events", "f"))
        },
    ),
    "personal_registration_sent": Breakage(
        "a personal free registration (f5) lands, and the trial events view sends it as if it lost its "
        "team-or-company filter",
        raw={"free_registration_events": [event("f5", company_namespace=False)]},
        tamper=append(
            "audiences.iterable_trial_events",
            "select event_key, event_kind, event_id, email, 'saasFreeRegistration' as event_name "
            "from staging.stg_signups__free_registration_events where not is_company_namespace",
        ),
        stage="python",
        unreachable="the view keeps only free registrations set up for a team or company; one it leaves out is "
        "the rule working, reported in the check's metadata",
    ),
}

# Rows a model guarantees away (ids it filters on, keys it groups by, values it computes): appended to the built
# relation, only before `dbt test`. Each test on these guards the model code; no raw row can break it.
APPENDED_ROWS: dict[str, tuple[str, str]] = {
    # relation: (why the model guarantees the rule, rows to append)
    "marts.dim_initial_source": (
        "a seed: only the CSV in the repository fills it",
        "select null as initial_source, null as source_bucket, 'Retired' as status "
        "union all select initial_source, source_bucket, status from {built} where initial_source = 'Webinar'",
    ),
    "marts.dim_lead_status": (
        "a seed: only the CSV in the repository fills it",
        "select null as lead_status, null as funnel_order "
        "union all select lead_status, funnel_order from {built} where lead_status = 'Raw'",
    ),
    "marts.dim_access_level": (
        "a seed: only the CSV in the repository fills it",
        "select null as access_level union all select access_level from {built} where access_level = 10",
    ),
    "marts.initial_source_history": (
        "the model keeps one row per person, with a known (non-NULL, allowed) value",
        "select null as person_id, null as initial_source "
        "union all select 13 as person_id, 'Linkedin Ads' as initial_source",
    ),
    "marts.marketing_contacts": (
        "the model keeps one row per surviving person and computes is_mql and is_opted_in as booleans",
        "select null as person_id, null as is_mql, null as is_opted_in "
        "union all by name select * from {built} where person_id = 1",
    ),
    "marts.marketing_contact_namespace_detail": (
        "the model groups by e-mail over users with an id and an e-mail",
        "select null as email, null as user_id "
        "union all by name select * from {built} where email = 'shared@example.com'",
    ),
    "audiences.iterable_user_audience": (
        "the model has one row per e-mail of the namespace detail, which has no NULL e-mail",
        "select null as email union all by name select * from {built} where email = 'shared@example.com'",
    ),
    "audiences.iterable_trial_events": (
        "the view drops events without an e-mail, the staging views drop events without an id, and it names events "
        "from the dbt vars only",
        "select null as event_key, null as event_id, null as email, 'signup' as event_name",
    ),
    "audiences.gainsight_program_recipients": (
        "the model computes the program from the account's dates, the segment by a CASE that ends in Tech Touch, "
        "surveys from the reason, the key from the e-mail, the person id or a fixed 'unidentified-contact', and "
        "joins on account ids",
        "select null as recipient_key, null as account_id, null as receives_surveys, 'renewal' as program, "
        "null as segment union all by name select 'tampered:segment' as recipient_key, 0 as account_id, "
        "false as receives_surveys, 'enablement' as program, 'Enterprise' as segment",
    ),
    "audiences.gainsight_program_companies": (
        "the model computes the program from the account's dates, the segment by a CASE that ends in Tech Touch, and "
        "its staging view drops accounts without an id",
        "select null as account_id, 'Tampered' as account_name, 'renewal' as program, null as segment "
        "union all by name select 0 as account_id, 'Tampered segment' as account_name, 'enablement' as program, "
        "'Enterprise' as segment",
    ),
    "staging.int_crm_persons_merged": (
        "the view keeps the latest version of each record with an id, its survivor is never NULL, and it names only "
        "the four merge issues it detects",
        "select null as person_id, null as surviving_person_id, 'merged twice' as merge_issue "
        "union all by name select * from {built} where person_id = 1",
    ),
    "staging.int_cs_program_accounts": (
        "the view computes the program from the account's dates, the segment by a CASE that ends in Tech Touch, and "
        "its staging view drops accounts without an id",
        "select null as account_id, 'renewal' as program, null as segment "
        "union all by name select 0 as account_id, 'enablement' as program, 'Enterprise' as segment",
    ),
    "staging.stg_crm__persons": ("the view drops records without an id", "select null as person_id"),
    "staging.stg_cs__accounts": ("the view drops accounts without an id", "select null as account_id"),
    "staging.stg_cs__contacts": ("the view drops contacts without an account id", "select null as account_id"),
    "staging.stg_gitlab__namespaces": ("the view drops namespaces without an id", "select null as namespace_id"),
    "staging.stg_gitlab__users": ("the view drops users without an id", "select null as user_id"),
    "staging.stg_marketo__unsubscribes": (
        "the view gives an event without an id one of its own (or drops it when it has no e-mail either)",
        "select null as event_id",
    ),
    "staging.stg_signups__trial_signup_events": (
        "the view drops events without an id, and its key is the kind and the id",
        "select null as event_id, null as event_key",
    ),
    "staging.stg_signups__free_registration_events": (
        "the view drops events without an id, and its key is the kind and the id",
        "select null as event_id, null as event_key",
    ),
}

for _relation, (_why, _rows) in APPENDED_ROWS.items():
    BREAKAGES[f"appended:{_relation}"] = Breakage(
        f"NULL, duplicate or out-of-range rows appended to {_relation}",
        tamper=append(_relation, _rows),
        stage="dbt",
        unreachable=_why,
    )


# --- one case per check ---------------------------------------------------------------------------------------------


def by(*breakages: str) -> Case:
    return Case(breakages)


def appended(relation: str) -> Case:
    return Case((f"appended:{relation}",))


def cases(asset: str, case: Case, *checks: str) -> dict[CheckId, Case]:
    """The same case for several checks of one asset."""
    return {(asset, check): case for check in checks}


CASES: dict[CheckId, Case] = {
    # Python checks on the CRM records and the contacts mart
    ("staging/stg_crm__persons", "crm_initial_source_overwritten"): by("crm_source_overwritten"),
    ("staging/stg_crm__persons", "crm_initial_source_unknown"): by("crm_unknown_values"),
    ("staging/stg_crm__persons", "crm_lead_status_unknown"): by("crm_unknown_values"),
    ("staging/stg_crm__persons", "crm_merge_cycles"): by("crm_merge_shapes"),
    ("staging/stg_crm__persons", "crm_merge_dangling_targets"): by("crm_merge_shapes"),
    ("staging/stg_crm__persons", "crm_self_merges"): by("crm_merge_shapes"),
    ("staging/stg_crm__persons", "crm_person_score_invalid"): by("crm_score_not_a_number"),
    ("marts/initial_source_history", "initial_source_immutable"): by("history_rewritten"),
    ("marts/marketing_contacts", "every_crm_record_in_one_contact"): by("merge_chain_past_the_bound"),
    ("marts/marketing_contacts", "initial_source_allowed"): by("contact_outside_dimensions"),
    ("marts/marketing_contacts", "lead_status_allowed"): by("contact_outside_dimensions"),
    ("marts/marketing_contacts", "merge_keeps_oldest_initial_source"): by(
        "merged_set", "merged_contact_loses_oldest_source"
    ),
    ("marts/marketing_contacts", "mql_matches_score"): by("mql_status_disagrees_with_score"),
    # the raw tables that land every day: their latest observation
    ("raw/crm_persons", "source_still_arriving"): by("raw_sources_not_arriving"),
    ("raw/gitlab_users", "source_still_arriving"): by("raw_sources_not_arriving"),
    ("raw/gitlab_namespaces", "source_still_arriving"): by("raw_sources_not_arriving"),
    # Python checks on the Iterable audiences and sync
    ("audiences/iterable_user_audience", "audience_only_opted_in"): by("opted_out_person_in_audience"),
    ("audiences/iterable_user_audience", "audience_within_two_months"): by("stale_as_of_date"),
    ("audiences/iterable_user_audience", "audience_payload_valid"): by("user_email_invalid"),
    ("iterable_user_sync", "iterable_user_sync_health"): by("user_email_invalid", "iterable_rejections"),
    ("iterable_unsubscribe_sync", "iterable_unsubscribe_sync_health"): by("live_rejections"),
    ("iterable_signup_profile_sync", "iterable_signup_profile_sync_health"): by("live_rejections"),
    ("iterable_trial_event_sync", "iterable_trial_event_sync_health"): by("live_rejections"),
    ("gainsight_company_sync", "gainsight_company_sync_health"): by("program_accounts", "gainsight_rejections"),
    ("gainsight_person_sync", "gainsight_person_sync_health"): by("live_rejections"),
    ("audiences/iterable_trial_events", "free_registrations_only_for_company"): by("personal_registration_sent"),
    ("audiences/iterable_user_audience", "iterable_user_change_guard"): by("synced_records_gone"),
    ("audiences/gainsight_program_companies", "gainsight_company_change_guard"): by("synced_records_gone"),
    ("audiences/gainsight_program_recipients", "gainsight_person_change_guard"): by("synced_records_gone"),
    # Python checks on the Customer Programs
    ("audiences/gainsight_program_recipients", "sold_to_never_surveyed"): by("program_accounts", "sold_to_surveyed"),
    ("audiences/gainsight_program_recipients", "recipient_roles_valid"): by(
        "program_accounts", "several_sold_to", "recipient_reason_unknown", "admin_unconfirmed"
    ),
    ("audiences/gainsight_program_companies", "every_program_account_has_a_recipient"): by("program_accounts"),
    ("audiences/gainsight_program_companies", "account_has_several_sold_to_contacts"): by("several_sold_to"),
    ("audiences/gainsight_program_companies", "account_carr_not_an_amount"): by("carr_not_an_amount"),
    ("audiences/gainsight_program_companies", "company_carr_matches_source"): by("company_carr_drifts"),
    ("audiences/gainsight_program_companies", "every_customer_account_in_a_program"): by(
        "company_carr_drifts", "company_segment_wrong"
    ),
    # dbt tests on the raw sources: hand-made raw rows
    **cases(
        "raw/crm_persons",
        by("crm_bad_keys"),
        "source_not_null_crm_crm_persons_person_id",
        "source_unique_combination_of_columns_crm_crm_persons_person_id__updated_at",
    ),
    **cases(
        "raw/cs_accounts",
        by("cs_bad_rows"),
        "source_accepted_values_cs_cs_accounts_deployment_type__SaaS__Self_Managed",
        "source_not_null_cs_cs_accounts_account_id",
        "source_unique_cs_cs_accounts_account_id",
    ),
    **cases(
        "raw/cs_contacts",
        by("cs_bad_rows"),
        "source_unique_combination_of_columns_cs_cs_contacts_account_id__person_id",
    ),
    **cases(
        "raw/gitlab_members",
        by("gitlab_bad_keys"),
        "source_unique_combination_of_columns_gitlab_gitlab_members_namespace_id__user_id",
    ),
    **cases(
        "raw/gitlab_namespaces",
        by("gitlab_bad_keys"),
        "source_not_null_gitlab_gitlab_namespaces_namespace_id",
        "source_unique_gitlab_gitlab_namespaces_namespace_id",
    ),
    **cases(
        "raw/gitlab_users",
        by("gitlab_bad_keys"),
        "source_not_null_gitlab_gitlab_users_user_id",
        "source_unique_gitlab_gitlab_users_user_id",
    ),
    **cases(
        "raw/marketo_unsubscribes",
        by("marketo_bad_keys"),
        "source_not_null_marketo_marketo_unsubscribes_event_id",
        "source_unique_marketo_marketo_unsubscribes_event_id",
    ),
    **{
        check: case
        for table in ("trial_signup_events", "free_registration_events")
        for check, case in cases(
            f"raw/{table}",
            by("signup_bad_rows"),
            f"source_not_null_signups_{table}_email",
            f"source_not_null_signups_{table}_event_id",
            f"source_not_null_signups_{table}_occurred_at",
            f"source_unique_signups_{table}_event_id",
        ).items()
    },
    # dbt tests on the staging views: duplicates pass through them from raw; NULL ids never do
    **cases("staging/stg_crm__persons", appended("staging.stg_crm__persons"), "not_null_stg_crm__persons_person_id"),
    **cases(
        "staging/stg_crm__persons",
        by("crm_bad_keys"),
        "unique_combination_of_columns_stg_crm__persons_person_id__updated_at",
    ),
    **cases("staging/stg_cs__accounts", appended("staging.stg_cs__accounts"), "not_null_stg_cs__accounts_account_id"),
    **cases("staging/stg_cs__accounts", by("cs_bad_rows"), "unique_stg_cs__accounts_account_id"),
    **cases("staging/stg_cs__contacts", appended("staging.stg_cs__contacts"), "not_null_stg_cs__contacts_account_id"),
    **cases(
        "staging/stg_cs__contacts",
        by("cs_bad_rows"),
        "unique_combination_of_columns_stg_cs__contacts_account_id__person_id",
    ),
    **cases(
        "staging/stg_gitlab__members",
        by("gitlab_bad_keys"),
        "relationships_stg_gitlab__members_access_level__access_level__ref_dim_access_level_",
        "unique_combination_of_columns_stg_gitlab__members_namespace_id__user_id",
    ),
    **cases(
        "staging/stg_gitlab__namespaces",
        appended("staging.stg_gitlab__namespaces"),
        "not_null_stg_gitlab__namespaces_namespace_id",
    ),
    **cases("staging/stg_gitlab__namespaces", by("gitlab_bad_keys"), "unique_stg_gitlab__namespaces_namespace_id"),
    **cases("staging/stg_gitlab__users", appended("staging.stg_gitlab__users"), "not_null_stg_gitlab__users_user_id"),
    **cases("staging/stg_gitlab__users", by("gitlab_bad_keys"), "unique_stg_gitlab__users_user_id"),
    **cases(
        "staging/stg_marketo__unsubscribes",
        appended("staging.stg_marketo__unsubscribes"),
        "not_null_stg_marketo__unsubscribes_event_id",
    ),
    **cases("staging/stg_marketo__unsubscribes", by("marketo_bad_keys"), "unique_stg_marketo__unsubscribes_event_id"),
    **{
        check: case
        for table in ("trial_signup_events", "free_registration_events")
        for check, case in {
            **cases(
                f"staging/stg_signups__{table}",
                by("signup_bad_rows"),  # the staging views keep events without an e-mail
                f"not_null_stg_signups__{table}_email",
                f"unique_stg_signups__{table}_event_id",
                f"unique_stg_signups__{table}_event_key",
            ),
            **cases(
                f"staging/stg_signups__{table}",
                appended(f"staging.stg_signups__{table}"),
                f"not_null_stg_signups__{table}_event_id",
                f"not_null_stg_signups__{table}_event_key",
            ),
        }.items()
    },
    **cases(
        "staging/int_crm_persons_merged",
        appended("staging.int_crm_persons_merged"),
        "accepted_values_int_crm_persons_merged_merge_issue__self_merge__dangling_target__cycle__chain_too_deep",
        "not_null_int_crm_persons_merged_person_id",
        "not_null_int_crm_persons_merged_surviving_person_id",
        "unique_int_crm_persons_merged_person_id",
    ),
    **cases(
        "staging/int_cs_program_accounts",
        appended("staging.int_cs_program_accounts"),
        "accepted_values_int_cs_program_accounts_program__onboarding__enablement__retention",
        "accepted_values_int_cs_program_accounts_segment__Tech_Touch__Scale__CSM_Managed",
        "not_null_int_cs_program_accounts_account_id",
        "not_null_int_cs_program_accounts_segment",
    ),
    **cases("staging/int_cs_program_accounts", by("cs_bad_rows"), "unique_int_cs_program_accounts_account_id"),
    # dbt tests on the seeds and marts
    **cases(
        "marts/dim_access_level",
        appended("marts.dim_access_level"),
        "not_null_dim_access_level_access_level",
        "unique_dim_access_level_access_level",
    ),
    **cases(
        "marts/dim_initial_source",
        appended("marts.dim_initial_source"),
        "accepted_values_dim_initial_source_status__Active__Inactive",
        "not_null_dim_initial_source_initial_source",
        "not_null_dim_initial_source_source_bucket",
        "unique_dim_initial_source_initial_source",
    ),
    **cases(
        "marts/dim_lead_status",
        appended("marts.dim_lead_status"),
        "not_null_dim_lead_status_funnel_order",
        "not_null_dim_lead_status_lead_status",
        "unique_dim_lead_status_funnel_order",
        "unique_dim_lead_status_lead_status",
    ),
    **cases(
        "marts/initial_source_history",
        appended("marts.initial_source_history"),
        "not_null_initial_source_history_initial_source",
        "not_null_initial_source_history_person_id",
        "relationships_initial_source_history_initial_source__initial_source__ref_dim_initial_source_",
        "unique_initial_source_history_person_id",
    ),
    **cases(
        "marts/marketing_contact_namespace_detail",
        appended("marts.marketing_contact_namespace_detail"),
        "not_null_marketing_contact_namespace_detail_email",
        "not_null_marketing_contact_namespace_detail_user_id",
        "unique_marketing_contact_namespace_detail_email",
    ),
    **cases(
        "marts/marketing_contacts",
        appended("marts.marketing_contacts"),
        "not_null_marketing_contacts_is_mql",
        "not_null_marketing_contacts_is_opted_in",
        "not_null_marketing_contacts_person_id",
        "unique_marketing_contacts_person_id",
    ),
    # dbt tests on the audiences
    **cases(
        "audiences/iterable_user_audience",
        appended("audiences.iterable_user_audience"),
        "not_null_iterable_user_audience_email",
        "unique_iterable_user_audience_email",
    ),
    **cases(
        "audiences/iterable_trial_events",
        appended("audiences.iterable_trial_events"),
        "accepted_values_iterable_trial_events_event_name___var_trial_event_name____var_free_registration_event_name_",
        "not_null_iterable_trial_events_email",
        "not_null_iterable_trial_events_event_id",
        "not_null_iterable_trial_events_event_key",
    ),
    **cases("audiences/iterable_trial_events", by("signup_bad_rows"), "unique_iterable_trial_events_event_key"),
    **cases(
        "audiences/gainsight_program_companies",
        appended("audiences.gainsight_program_companies"),
        "accepted_values_gainsight_program_companies_program__onboarding__enablement__retention",
        "accepted_values_gainsight_program_companies_segment__Tech_Touch__Scale__CSM_Managed",
        "not_null_gainsight_program_companies_account_id",
        "not_null_gainsight_program_companies_segment",
    ),
    **cases(
        "audiences/gainsight_program_companies",
        by("cs_bad_rows"),
        "not_null_gainsight_program_companies_account_name",
        "unique_gainsight_program_companies_account_id",
    ),
    **cases(
        "audiences/gainsight_program_recipients",
        appended("audiences.gainsight_program_recipients"),
        "accepted_values_gainsight_program_recipients_program__onboarding__enablement__retention",
        "accepted_values_gainsight_program_recipients_segment__Tech_Touch__Scale__CSM_Managed",
        "not_null_gainsight_program_recipients_account_id",
        "not_null_gainsight_program_recipients_receives_surveys",
        "not_null_gainsight_program_recipients_recipient_key",
        "not_null_gainsight_program_recipients_segment",
    ),
    **cases(
        "audiences/gainsight_program_recipients",
        by("cs_bad_rows"),
        "unique_gainsight_program_recipients_recipient_key",
        "unique_combination_of_columns_gainsight_program_recipients_account_id__person_id__user_id__program",
    ),
}


def raw_rows() -> dict[str, list[dict[str, Any]]]:
    """Every breakage's raw rows, by raw table (the signup event tables included)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for breakage in BREAKAGES.values():
        for table, table_rows in breakage.raw.items():
            rows.setdefault(table, []).extend(table_rows)
    return rows


def tamperings(stage: str) -> list[Tamper]:
    """The tamperings of one stage, in the order the breakages are listed."""
    return [b.tamper for b in BREAKAGES.values() if b.stage == stage and b.tamper is not None]
