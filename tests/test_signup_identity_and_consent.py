"""Signup events end to end through the sensor, `ingest_signups_job` and the loopback Iterable emulator:
ids unique per kind only, consent (Marketo unsubscribes) on every signup push, row-level blocking of personal free
registrations, and which field decides "set up for a company"."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.iterable import BULK_SUBSCRIPTION_ACTION, BULK_UPDATE_USERS, TRACK_BULK
from marketing_pipelines.defs.iterable.checks import free_registrations_only_for_company
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.sync.iterable import iterable_event_id
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.spec import validate_request
from tests.support.dbt import build_from_raw
from tests.support.jobs import INGEST_JOB, run_job, run_sensor_and_jobs
from tests.support.signups import API_KEY, GITLAB_MARKETING, event, land, live_resources
from tests.support.warehouses import copy_warehouse

SIGNUP_VIEWS = "+audiences.iterable_trial_events +stg_marketo__unsubscribes +marketing_contacts"


TRIALS = [
    event("shared-1", "shared.trial@example.com"),
    event("before-1", "  Before@Example.COM "),  # unsubscribed in Marketo in October, signed up in November
    event("after-1", "after@example.com"),  # unsubscribed after signing up
    event("plain-1", "plain@example.com"),
]
FREE_REGISTRATIONS = [
    event("shared-1", "shared.free@example.com"),  # the same id as a trial: a different event
    # the event's companyNamespace decides; setup_for_company (on the event and in raw.gitlab_users) disagrees
    event("disagree-company", "company@example.com", user_id=101, companyNamespace=True, setup_for_company=False),
    event("disagree-personal", "personal@example.com", user_id=102, companyNamespace=False, setup_for_company=True),
    event("personal-1", "personal1@example.com", companyNamespace=False),
]


@pytest.fixture(scope="module")
def built_views(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Raw tables (two Marketo unsubscribes, two GitLab users) and the signup views built once, as the daily job
    does; no event landed yet. Each test gets a copy."""
    path = tmp_path_factory.mktemp("consent") / "warehouse.duckdb"
    build_from_raw(
        path,
        {
            "marketo_unsubscribes": [
                {"event_id": "u-1", "email": "before@example.com", "unsubscribed_at": dt.datetime(2026, 10, 1)},
                {"event_id": "u-2", "email": " AFTER@example.com", "unsubscribed_at": dt.datetime(2026, 11, 25)},
            ],
            "gitlab_users": [
                {"user_id": 101, "email": "company@example.com", "setup_for_company": False},
                {"user_id": 102, "email": "personal@example.com", "setup_for_company": True},
            ],
        },
        select=SIGNUP_VIEWS,
    )
    return path


@pytest.fixture
def warehouse_path(built_views: Path, tmp_path: Path) -> Path:
    return copy_warehouse(built_views, tmp_path / "warehouse.duckdb").path


@pytest.fixture
def live_env(tmp_path: Path, warehouse_path: Path, monkeypatch: pytest.MonkeyPatch):
    landing = tmp_path / "landing"
    with IterableEmulator(api_key=API_KEY) as emulator:
        monkeypatch.setenv("LANDING_DIR", str(landing))
        yield landing, emulator


def validate_bodies(emulator: IterableEmulator) -> None:
    for path, body in emulator.received_bodies:
        if path.startswith("/api/subscriptions/"):
            validate_request(BULK_SUBSCRIPTION_ACTION, body, method="put")
        else:
            validate_request(path, body)


def test_shared_id_is_two_events_each_sent_once_and_consent_holds(live_env, warehouse_path):
    landing, emulator = live_env
    land(landing, "trial_signups", "t.jsonl", TRIALS)
    land(landing, "free_registrations", "f.jsonl", FREE_REGISTRATIONS)
    # every run twice: the reruns send nothing
    results = run_sensor_and_jobs(live_resources(warehouse_path, emulator), times=2)
    assert all(result.success for result in results)
    validate_bodies(emulator)

    sent = {key: iterable_event_id(key) for key in ("trial_signups:shared-1", "free_registrations:shared-1")}
    assert len(set(sent.values())) == 2
    assert emulator.events[sent["trial_signups:shared-1"]]["eventName"] == "saasTrial"
    assert emulator.events[sent["free_registrations:shared-1"]]["eventName"] == "saasFreeRegistration"
    expected_events = {
        *(f"trial_signups:{e['event_id']}" for e in TRIALS),
        "free_registrations:shared-1",
        "free_registrations:disagree-company",
    }
    assert dict(emulator.event_receipts) == {iterable_event_id(key): 1 for key in expected_events}
    for result in results[2:]:
        for step in ("iterable_signup_profile_sync", "iterable_trial_event_sync"):
            (materialization,) = result.asset_materializations_for_node(step)
            assert materialization.metadata["sent"].value == 0

    # consent: both unsubscribed people (one before, one after signing up) end opted out of GitLab Marketing only
    assert emulator.unsubscribed == {"before@example.com": {GITLAB_MARKETING}, "after@example.com": {GITLAB_MARKETING}}
    assert {"before@example.com", "after@example.com", "plain@example.com"} <= set(emulator.users)
    order = [
        (path, body)
        for path, body in emulator.received_bodies
        if "before@example.com" in json.dumps(body)  # the profile update, the opt-out, then the event
    ]
    assert [path for path, _ in order] == [
        BULK_UPDATE_USERS,
        f"/api/subscriptions/messageType/{GITLAB_MARKETING}",
        TRACK_BULK,
    ]
    opt_outs = Counter(key[0] for key in emulator.subscription_action_receipts)
    assert opt_outs == {"before@example.com": 1, "after@example.com": 1}


def test_unsubscribed_persons_event_waits_for_the_opt_out(live_env, warehouse_path):
    """Live without the message type id no opt-out can be sent: the unsubscribed person's event is held, every
    other event goes out; once the id is set, the next run opts them out and then tracks their event."""
    landing, emulator = live_env
    land(landing, "trial_signups", "t.jsonl", TRIALS)
    (first,) = run_sensor_and_jobs(live_resources(warehouse_path, emulator, message_type_id=None))
    assert first.success
    held = iterable_event_id("trial_signups:before-1")
    assert held not in emulator.events and iterable_event_id("trial_signups:plain-1") in emulator.events
    assert emulator.unsubscribed == {}

    nothing = {
        "ops": {a: {"config": {"files": []}} for a in ("raw__trial_signup_events", "raw__free_registration_events")}
    }
    resources = live_resources(warehouse_path, emulator)
    assert run_job(INGEST_JOB, resources, run_config=nothing, raise_on_error=True).success
    assert emulator.unsubscribed["before@example.com"] == {GITLAB_MARKETING}
    assert emulator.event_receipts[held] == 1
    validate_bodies(emulator)


def personal_view_sql() -> str:
    """A regression of the audience view that forgets the companyNamespace filter (what the check is for)."""
    columns = (
        "event_key, event_kind, event_id, email, {name} as event_name, 1763600000 as created_at, '{{}}' as data_fields"
    )
    return f"""create or replace view audiences.iterable_trial_events as
        select {columns.format(name="'saasTrial'")} from staging.stg_signups__trial_signup_events
        union all
        select {columns.format(name="'saasFreeRegistration'")} from staging.stg_signups__free_registration_events"""


def test_a_few_personal_free_registrations_warn_and_are_left_out_while_the_rest_go_out(live_env, warehouse_path):
    landing, emulator = live_env
    land(landing, "trial_signups", "t.jsonl", TRIALS)
    land(landing, "free_registrations", "f.jsonl", FREE_REGISTRATIONS)
    DuckDBWarehouse(warehouse_path).execute(personal_view_sql())
    results = run_sensor_and_jobs(live_resources(warehouse_path, emulator))
    assert all(result.success for result in results)
    checks = [e for r in results for e in r.get_asset_check_evaluations()]
    assert checks and all(c.severity == dg.AssetCheckSeverity.WARN for c in checks)
    assert any(not c.passed for c in checks)
    last = checks[-1]
    assert last.metadata["failing_records"].value == 2 and last.metadata["personal_share"].value == 0.5
    personal = {iterable_event_id(f"free_registrations:{i}") for i in ("disagree-personal", "personal-1")}
    assert not personal & set(emulator.events)
    assert iterable_event_id("free_registrations:disagree-company") in emulator.events
    assert iterable_event_id("trial_signups:plain-1") in emulator.events
    assert "personal@example.com" not in emulator.users and "personal1@example.com" not in emulator.users


def test_mostly_personal_free_registrations_fail_with_error_and_block_the_push(live_env, warehouse_path):
    landing, emulator = live_env
    more = [event(f"personal-{i}", f"p{i}@example.com", companyNamespace=False) for i in range(2, 6)]
    land(landing, "free_registrations", "f.jsonl", FREE_REGISTRATIONS + more)
    DuckDBWarehouse(warehouse_path).execute(personal_view_sql())
    config = {
        "ops": {
            "raw__trial_signup_events": {"config": {"files": []}},
            "raw__free_registration_events": {"config": {"files": [str(landing / "free_registrations" / "f.jsonl")]}},
        }
    }
    result = run_job(INGEST_JOB, live_resources(warehouse_path, emulator), run_config=config)
    (check,) = result.get_asset_check_evaluations()
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert check.metadata["failing_records"].value == 6
    assert not result.asset_materializations_for_node("iterable_trial_event_sync")
    assert emulator.received_bodies == []


def test_company_namespace_decides_when_setup_for_company_disagrees(warehouse_path, tmp_path):
    """The event's companyNamespace decides (it arrives with the event; raw.gitlab_users is loaded daily);
    setup_for_company, on the event or in raw.gitlab_users, is not consulted."""
    from marketing_pipelines.signups.ingest import ensure_tables, ingest_file

    db = DuckDBWarehouse(warehouse_path)
    ensure_tables(db)
    ingest_file(db, land(tmp_path / "landing", "free_registrations", "f.jsonl", FREE_REGISTRATIONS))
    rows = db.query(
        "select event_id from audiences.iterable_trial_events where event_kind = 'free_registrations' order by 1"
    )
    assert rows == [("disagree-company",), ("shared-1",)]
    assert db.query("select setup_for_company from raw.gitlab_users where user_id = 101") == [(False,)]
    check = free_registrations_only_for_company(WarehouseResource(duckdb_path=str(warehouse_path)))
    assert check.passed, "personal registrations the audience left out are the rule working"
    assert check.metadata["free_registrations_considered"].value == 4
    named = {r["event_key"]: r["email"] for r in check.metadata["personal_left_out_sample"].value}
    assert named == {
        "free_registrations:disagree-personal": "p***@example.com",
        "free_registrations:personal-1": "p***@example.com",
    }


def check_of(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (check,) = result.get_asset_check_evaluations()
    return check


def test_personal_free_registrations_left_out_by_the_view_pass_and_are_named_in_metadata(live_env, warehouse_path):
    """The audience view filters personal free registrations out by itself; the check reads them from staging and
    names them in its metadata, and passes: the push goes on without them."""
    landing, emulator = live_env
    land(
        landing,
        "free_registrations",
        "f.jsonl",
        [
            event("p1", "p1@example.com", companyNamespace=False),
            event("c1", "c1@example.com"),
            event("c2", "c2@example.com"),
            event("c3", "c3@example.com"),
        ],
    )
    (result,) = run_sensor_and_jobs(live_resources(warehouse_path, emulator))
    assert result.success
    check = check_of(result)
    assert check.passed and check.metadata["personal_left_out"].value == 1
    assert check.metadata["personal_left_out_sample"].value == [
        {"event_key": "free_registrations:p1", "email": "p***@example.com"}
    ]
    assert set(emulator.events) == {iterable_event_id(f"free_registrations:c{i}") for i in (1, 2, 3)}
    assert "p1@example.com" not in emulator.users


def test_mostly_personal_free_registrations_never_hold_back_the_company_ones(live_env, warehouse_path):
    """3 personal and 1 company free registration, the audience view as built: personal registrations are ordinary
    data the rule leaves out, not a broken rule, so the company one and every trial still go out."""
    landing, emulator = live_env
    land(landing, "trial_signups", "t.jsonl", [event("t1", "t1@example.com")])
    land(
        landing,
        "free_registrations",
        "f.jsonl",
        [
            event("p1", "p1@example.com", companyNamespace=False),
            event("p2", "p2@example.com", companyNamespace=False),
            event("p3", "p3@example.com", companyNamespace=False),
            event("c1", "c1@example.com"),
        ],
    )
    results = run_sensor_and_jobs(live_resources(warehouse_path, emulator))
    assert all(result.success for result in results)
    checks = [e for r in results for e in r.get_asset_check_evaluations()]
    assert checks and all(c.passed for c in checks)
    assert checks[-1].metadata["personal_left_out"].value == 3
    assert set(emulator.events) == {
        iterable_event_id("free_registrations:c1"),
        iterable_event_id("trial_signups:t1"),
    }
    assert not {"p1@example.com", "p2@example.com", "p3@example.com"} & set(emulator.users)


def test_free_registrations_loaded_over_a_day_ago_are_out_of_scope(warehouse_path, tmp_path):
    """Only the last day's free registrations count: yesterday's personal ones were judged by yesterday's runs."""
    from marketing_pipelines.signups.ingest import ensure_tables, ingest_file

    db = DuckDBWarehouse(warehouse_path)
    ensure_tables(db)
    ingest_file(db, land(tmp_path / "landing", "free_registrations", "f.jsonl", FREE_REGISTRATIONS))
    db.execute("update raw.free_registration_events set loaded_at = loaded_at - interval 25 hour")
    check = free_registrations_only_for_company(WarehouseResource(duckdb_path=str(warehouse_path)))
    assert check.passed and check.metadata["free_registrations_considered"].value == 0
