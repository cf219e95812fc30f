"""The rules on Snowflake (dbt-snowflake and the Snowflake warehouse against a fakesnow server on loopback), through
the real Dagster jobs: exact CARR to the Gainsight emulator, consent on the signup path to the Iterable emulator, and
an edited Initial Source history caught by its audit.

One server and one database for the module. The daily `refresh_marketing_data_job` runs once on hand-made raw rows,
live against the Gainsight emulator (so its sync assets push the built companies), which also fills the Initial
Source audit table. A trial signup file then lands and `ingest_signups_job` pushes it live to the Iterable emulator.
Last, one person's row in `marts.initial_source_history` is edited and the refresh runs again: its blocking audit
fails, naming that person, and the contacts keep the audited value. The DuckDB versions of these scenarios are in
`tests/test_gainsight_recipients.py`, `tests/test_signup_identity_and_consent.py` and
`tests/test_initial_source_rules.py`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from devtools.gainsight_emulator import GainsightEmulator
from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.gainsight import COMPANY_UPSERT
from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, TRACK_BULK
from marketing_pipelines.defs.transform import checks
from marketing_pipelines.resources import GainsightResource, build_resources
from marketing_pipelines.sync.iterable import iterable_event_id
from marketing_pipelines.warehouse import Warehouse
from marketing_pipelines.warehouse.raw_tables import RAW_TABLES, create_raw_tables_sql
from tests import fakesnow_shims
from tests.support.gainsight import account
from tests.support.jobs import check_result, materialized, run_refresh, run_sensor_and_jobs
from tests.support.metadata import sample_records
from tests.support.raw import crm_person
from tests.support.signups import API_KEY, GITLAB_MARKETING, event, land, live_resources

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")]

EXACT_CARR = "972765.41"  # a float32 turns it into 972765.4375
GAINSIGHT_KEY = "gs-test-snowflake"
UNSUBSCRIBED = "before@example.com"
SCHEMAS = ("raw", "staging", "marts", "audiences", "ops")
#: Leads with 10 points (as a number), created at the start of 2025.
PERSON_DEFAULTS = {"person_score": 10, "created_at": dt.datetime(2025, 1, 1)}


RAW = {
    "crm_persons": [
        crm_person(1, dt.datetime(2025, 1, 1), initial_source="Trial - GitLab.com", **PERSON_DEFAULTS),
        crm_person(2, dt.datetime(2025, 1, 1), initial_source="Webcast", **PERSON_DEFAULTS),
    ],
    "cs_accounts": [account(11, carr=EXACT_CARR), account(12, carr="25000.00")],
    "cs_contacts": [
        {
            "account_id": a,
            "person_id": 100 * a + 1,
            "email": f"p{100 * a + 1}@example.com",
            "gitlab_role": "GitLab Admin",
        }
        for a in (11, 12)
    ],
    "marketo_unsubscribes": [
        {"event_id": "u-1", "email": UNSUBSCRIBED, "unsubscribed_at": dt.datetime(2026, 10, 1)},
    ],
}
TRIALS = [event("before-1", "  Before@Example.COM "), event("plain-1", "plain@example.com")]


@dataclass
class Refreshed:
    """The module's Snowflake warehouse after the first refresh, the run's result and the Gainsight it pushed to."""

    warehouse: Warehouse
    landing: Path
    first: dg.ExecuteInProcessResult
    gainsight: GainsightEmulator
    resources: dict[str, Any]  # the code location's, on this warehouse, Iterable and Gainsight in dry-run


def failed_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


@pytest.fixture(scope="module")
def refreshed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Refreshed]:
    landing = tmp_path_factory.mktemp("snowflake_rules") / "landing"
    with fakesnow_shims.server() as connection, pytest.MonkeyPatch.context() as patch:
        # A database of its own: the emulator keeps its state for the whole test process.
        env = {**fakesnow_shims.snowflake_env(connection), "SNOWFLAKE_DATABASE": "SNOWFLAKE_RULES"}
        patch.setenv("LANDING_DIR", str(landing))
        from marketing_pipelines.resources import warehouse_resource_from

        resource = warehouse_resource_from(env)
        warehouse = resource.get_warehouse()
        warehouse.execute(create_raw_tables_sql(replace=True))
        for table, rows in RAW.items():
            warehouse.write_frame("raw", table, pd.DataFrame(rows, columns=list(RAW_TABLES[table])))
        with GainsightEmulator(access_key=GAINSIGHT_KEY) as gainsight:
            live = GainsightResource(access_key=GAINSIGHT_KEY, base_url=gainsight.base_url)
            first = run_refresh(build_resources({}, warehouse=resource, gainsight=live))
        yield Refreshed(warehouse, landing, first, gainsight, build_resources({}, warehouse=resource))
        warehouse.execute([f"drop schema if exists {schema} cascade" for schema in SCHEMAS])
        warehouse.close()


def test_the_first_refresh_succeeds_and_fills_the_initial_source_audit(refreshed):
    assert refreshed.first.success, f"failed steps: {failed_steps(refreshed.first)}"
    counts = refreshed.warehouse.row_counts(
        [("marts", "initial_source_history"), ("ops", "initial_source_history_audit")]
    )
    assert counts[("marts", "initial_source_history")] == counts[("ops", "initial_source_history_audit")] == 2


def test_carr_reaches_gainsight_with_exactly_its_digits_on_snowflake(refreshed):
    (company_sync,) = refreshed.first.asset_materializations_for_node("gainsight_company_sync")
    assert company_sync.metadata["mode"].value == "live"
    bodies = [body for path, body in refreshed.gainsight.received_bodies if path == COMPANY_UPSERT]
    arr = {record["Name"]: record["Arr"] for body in bodies for record in body["records"]}  # parsed as Decimal
    assert arr["Account 11"] == Decimal(EXACT_CARR) and isinstance(arr["Account 11"], Decimal)
    assert str(arr["Account 11"]) == EXACT_CARR and str(arr["Account 12"]) == "25000.00"
    stored = refreshed.gainsight.company(GitLab_Account_ID__gc=11)["Arr"]
    assert str(stored) == EXACT_CARR


def test_an_unsubscribed_email_that_signs_up_is_opted_out_before_its_event_on_snowflake(refreshed):
    land(refreshed.landing, "trial_signups", "t.jsonl", TRIALS)
    with IterableEmulator(api_key=API_KEY) as emulator:
        results = run_sensor_and_jobs(live_resources(refreshed.resources["warehouse"], emulator))
    assert results and all(result.success for result in results), [failed_steps(r) for r in results]
    assert emulator.unsubscribed == {UNSUBSCRIBED: {GITLAB_MARKETING}}, "only the unsubscribed person is opted out"
    assert {UNSUBSCRIBED, "plain@example.com"} <= set(emulator.users)
    assert set(emulator.events) == {iterable_event_id(f"trial_signups:{e['event_id']}") for e in TRIALS}
    order = [path for path, body in emulator.received_bodies if UNSUBSCRIBED in json.dumps(body)]
    assert order == [BULK_UPDATE_USERS, f"/api/subscriptions/messageType/{GITLAB_MARKETING}", TRACK_BULK]


def test_edited_history_fails_immutability_and_never_reaches_the_contacts_on_snowflake(refreshed):
    """Runs last: it edits the audited history and leaves the module's warehouse failing its audit."""
    warehouse = refreshed.warehouse
    warehouse.execute("update marts.initial_source_history set initial_source = 'Demo' where person_id = 1")
    again = run_refresh(refreshed.resources)
    immutable = check_result(again, checks.INITIAL_SOURCE_IMMUTABLE)
    assert not immutable.passed and immutable.severity == dg.AssetCheckSeverity.ERROR
    assert sample_records(immutable) == [{"person_id": 1, "email": None, "value": "Trial - GitLab.com -> Demo"}]
    contacts = warehouse.query("select person_id, initial_source from marts.marketing_contacts order by person_id")
    assert [(int(p), s) for p, s in contacts] == [(1, "Trial - GitLab.com"), (2, "Webcast")]
    assert {"marts/marketing_contacts", "audiences/iterable_user_audience"} & materialized(again) == set()
    assert "marts__initial_source_history_initial_source_immutable" in failed_steps(again)
    assert not again.success
