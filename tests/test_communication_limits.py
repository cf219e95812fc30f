"""Communication limits across tools: journey starts (Iterable trial / free-registration events, Gainsight program
enrolments and program changes) of one person are counted together from `ops.sync_changelog`; past 2 a day or 7 a
week they are deferred to `ops.sync_deferrals`, never lost, and operational records are never deferred (emulators
on loopback; DuckDB, and Snowflake via fakesnow)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from devtools.gainsight_emulator import GainsightEmulator
from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.gainsight import GainsightClient
from marketing_pipelines.clients.iterable import IterableClient
from marketing_pipelines.defs.gainsight.assets import gainsight_company_sync, gainsight_person_sync
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.resources.gainsight import GainsightResource
from marketing_pipelines.resources.iterable import IterableResource
from marketing_pipelines.sync import Api, run_sync
from marketing_pipelines.sync.destination import person_hash
from marketing_pipelines.sync.gainsight import PEOPLE
from marketing_pipelines.sync.iterable import SIGNUP_PROFILES, TRIAL_EVENTS, USERS, iterable_event_id
from marketing_pipelines.sync.limits import CommunicationLimits, JourneyWindow
from marketing_pipelines.warehouse import DuckDBWarehouse, Warehouse
from tests.support.gainsight import program_company_rows

API_KEY = "sk-test-limits-0123456789"
PERSON = "busy.person@example.com"
OTHER = "calm.person@example.com"


def set_signups(warehouse: Warehouse, events: list[tuple[str, str]]) -> None:
    """The signup events (event id, e-mail) as trials, with the staging tables the signup audiences read (no
    unsubscribes, no opted-out contacts, no personal free registrations)."""
    empty = {"email": pd.Series(dtype="str")}
    warehouse.write_frame(
        "staging",
        "stg_marketo__unsubscribes",
        pd.DataFrame({"event_id": pd.Series(dtype="str"), **empty}),
        replace=True,
    )
    contacts = pd.DataFrame({**empty, "is_opted_in": pd.Series(dtype="bool")})
    warehouse.write_frame("marts", "marketing_contacts", contacts, replace=True)
    registrations = {"event_key": pd.Series(dtype="str"), "user_id": pd.Series(dtype="int64")}
    registrations["is_company_namespace"] = pd.Series(dtype="bool")
    warehouse.write_frame("staging", "stg_signups__free_registration_events", pd.DataFrame(registrations), replace=True)
    rows = pd.DataFrame(
        {
            "event_key": [f"trial_signups:{event_id}" for event_id, _ in events],
            "event_kind": "trial_signups",
            "event_id": [event_id for event_id, _ in events],
            "email": [address for _, address in events],
            "event_name": "saasTrial",
            "created_at": 1_790_000_000,
            "data_fields": json.dumps({"company": "Acme"}),
        }
    )
    warehouse.write_frame("audiences", "iterable_trial_events", rows, replace=True)


def iterable_client(emulator: IterableEmulator) -> IterableClient:
    return IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=100, track_bulk_per_second=100)


def deferrals(warehouse: Warehouse) -> list[tuple]:
    return warehouse.query(
        "select destination, record_key, person, reason, deferred_at, sendable_at, run_id from ops.sync_deferrals "
        "order by destination, record_key"
    )


def naive(value: object) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp).to_pydatetime()


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_three_journey_starts_in_one_day_send_two_then_the_third_the_next_day_never_lost(engine):
    set_signups(engine, [("a1", PERSON), ("a2", PERSON), ("a3", PERSON), ("b1", OTHER)])
    with IterableEmulator(api_key=API_KEY, rate_limits={}) as emulator:
        first = run_sync(engine, TRIAL_EVENTS, Api(iterable_client(emulator)), run_id="day-1")
        after_first = dict(emulator.event_receipts)
        deferred_first = deferrals(engine)
        synced_first = engine.query("select record_key from ops.sync_state order by record_key")
        rerun = run_sync(engine, TRIAL_EVENTS, Api(iterable_client(emulator)), run_id="day-1-rerun")
        after_rerun = dict(emulator.event_receipts)
        deferred_rerun = deferrals(engine)
        # a day passes: move the changelog's times back by 25 hours
        engine.execute("update ops.sync_changelog set logged_at = logged_at - interval '25 hours'")
        next_day = run_sync(engine, TRIAL_EVENTS, Api(iterable_client(emulator)), run_id="day-2")
        after_next_day = dict(emulator.event_receipts)
    ids = {key: iterable_event_id(f"trial_signups:{key}") for key in ("a1", "a2", "a3", "b1")}

    assert (first.sent, first.accepted, first.deferred, first.added) == (3, 3, 1, 3)
    assert after_first == {ids["a1"]: 1, ids["a2"]: 1, ids["b1"]: 1}, "two for the busy person, the third waits"
    ((destination, key, person, reason, deferred_at, sendable_at, run_id),) = deferred_first
    assert (destination, key, person, run_id) == (
        "iterable_trial_events",
        "trial_signups:a3",
        person_hash(PERSON),
        "day-1",
    )
    assert reason == "2 marketing e-mails in 24 hours (limit 2)"
    (first_start,) = engine.query(  # as logged on day 1: the test moved the times back 25 hours since
        "select min(logged_at) + interval '25 hours' from ops.sync_changelog where person = ? and journey is not null",
        [person_hash(PERSON)],
    )[0]
    assert naive(sendable_at) == naive(first_start) + timedelta(hours=24), "sendable 24 h after the first start"
    assert naive(deferred_at) <= naive(sendable_at) - timedelta(hours=23)
    assert synced_first == [(f"trial_signups:{key}",) for key in ("a1", "a2", "b1")], "a deferred record is not synced"

    assert (rerun.sent, rerun.requests, rerun.deferred) == (0, 0, 1), "a rerun before the window opens sends nothing"
    assert after_rerun == after_first
    ((*kept, rerun_id),) = deferred_rerun
    assert kept == list(deferred_first[0][:-1]) and rerun_id == "day-1-rerun", "the deferral stays, first time kept"

    assert (next_day.sent, next_day.accepted, next_day.deferred) == (1, 1, 0)
    assert after_next_day == {**after_first, ids["a3"]: 1}, "the third goes out the next day, once"
    assert deferrals(engine) == [], "a deferral is resolved once sent"
    runs = engine.query("select run_id, deferred from ops.sync_runs order by started_at")
    assert runs == [("day-1", 1), ("day-1-rerun", 1), ("day-2", 0)]


def recipients(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    """Program recipients (account index, e-mail, program)."""
    return pd.DataFrame(
        [
            {
                "recipient_key": f"{70_000_000 + i}:{address}",
                "account_id": 70_000_000 + i,
                "email": address,
                "role": "GitLab Admin",
                "recipient_reason": "gitlab_admin",
                "receives_surveys": True,
                "program": program,
                "segment": "Scale",
                "skip_reason": None,
            }
            for i, address, program in rows
        ]
    )


def test_iterable_and_gainsight_starts_count_together_and_operational_records_are_never_deferred(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "across.duckdb")
    set_signups(warehouse, [("a1", PERSON)])
    users = pd.DataFrame({"email": [PERSON, OTHER], "user_id": ["1", "2"], "data_fields": "{}"})
    warehouse.write_frame("audiences", "iterable_user_audience", users, replace=True)
    warehouse.write_frame("audiences", "gainsight_program_companies", program_company_rows([0, 1, 2]), replace=True)
    enrolled = [(0, PERSON, "onboarding"), (1, PERSON, "onboarding"), (2, OTHER, "onboarding")]
    warehouse.write_frame("audiences", "gainsight_program_recipients", recipients(enrolled), replace=True)
    resources = {"warehouse": WarehouseResource(duckdb_path=str(warehouse.path))}
    with (
        IterableEmulator(api_key=API_KEY, rate_limits={}) as iterable,
        GainsightEmulator(access_key="k", calls_per_window=100, window_seconds=1) as gainsight,
    ):
        client = iterable_client(iterable)
        events = run_sync(warehouse, TRIAL_EVENTS, Api(client), run_id="events")
        resources["gainsight"] = GainsightResource(access_key="k", base_url=gainsight.base_url, window_seconds=1)
        result = dg.materialize([gainsight_company_sync, gainsight_person_sync], resources=resources)
        first_deferrals = deferrals(warehouse)
        # operational records for the person at the limit: profile updates, signup profile, a role change
        exempt = [run_sync(warehouse, d, Api(client), run_id="exempt") for d in (USERS, SIGNUP_PROFILES)]
        role_changed = recipients(enrolled).assign(role=lambda rows: rows["role"].where(rows.index != 0, "Owner"))
        warehouse.write_frame("audiences", "gainsight_program_recipients", role_changed, replace=True)
        gainsight_client = GainsightClient("k", gainsight.base_url, window_seconds=1)
        role_change = run_sync(warehouse, PEOPLE, Api(gainsight_client), run_id="role")
        moved = role_changed.assign(program=lambda rows: rows["program"].where(rows.index != 0, "retention"))
        warehouse.write_frame("audiences", "gainsight_program_recipients", moved, replace=True)
        program_change = run_sync(warehouse, PEOPLE, Api(gainsight_client), run_id="program")
        program_deferrals = deferrals(warehouse)
        # the person leaves account 0: the exit is operational and goes out at the limit
        warehouse.write_frame("audiences", "gainsight_program_recipients", moved.iloc[1:], replace=True)
        leaving = run_sync(warehouse, PEOPLE, Api(gainsight_client), run_id="leaving")
        association_0 = gainsight.association(PERSON, GitLab_Account_ID__gc=70_000_000)
        enrolled_1 = (PERSON, gainsight.company(GitLab_Account_ID__gc=70_000_001)["Gsid"]) in gainsight.company_people

    assert (events.accepted, events.deferred) == (1, 0)
    assert result.success
    metadata = {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["gainsight_company_sync"]["deferred"].value == 0, "company records are not sends to a person"
    assert metadata["gainsight_person_sync"]["deferred"].value == 1
    assert metadata["gainsight_person_sync"]["accepted"].value == 2
    assert [row[:4] for row in first_deferrals] == [
        ("gainsight_people", f"70000001:{PERSON}", person_hash(PERSON), "2 marketing e-mails in 24 hours (limit 2)")
    ], "one Iterable event + one Gainsight enrolment: the second enrolment waits"
    assert [(r.accepted, r.deferred, r.rejected) for r in exempt] == [(2, 0, 0), (1, 0, 0)]
    assert (role_change.changed, role_change.accepted, role_change.deferred) == (1, 1, 1), "same program: sent"
    assert (program_change.sent, program_change.deferred) == (0, 2), "a program change is a journey start"
    assert [row[1] for row in program_deferrals] == [f"70000000:{PERSON}", f"70000001:{PERSON}"]
    assert (leaving.removed, leaving.accepted, leaving.deferred) == (1, 1, 1), "exits are never deferred"
    assert association_0["Customer_Program__gc"] is None, "the exit cleared the program"
    assert [row[1] for row in deferrals(warehouse)] == [f"70000001:{PERSON}"], "a record gone is no longer deferred"
    assert not enrolled_1, "the deferred enrolment was never sent"


def test_the_week_limit_defers_the_eighth_start_until_the_oldest_is_seven_days_old():
    now = datetime(2026, 11, 20, 12, 0)
    week = [now - timedelta(days=6, hours=d) for d in range(3)] + [now - timedelta(days=d) for d in (4, 3, 2, 1)]
    window = JourneyWindow(CommunicationLimits(), now, starts={"p": sorted(week)})
    assert not window.admit("e8", "p", "saasTrial")
    assert not window.admit("e9", "p", "saasTrial")
    assert window.admit("q1", "q", "saasTrial") and window.admit("q2", "q", "saasTrial")
    assert not window.admit("q3", "q", "saasTrial")
    assert window.admit("nobody", None, "saasTrial"), "a record naming no person cannot be counted"
    e8, e9, q3 = window.deferred
    assert (e8.reason, e8.sendable_at) == ("7 marketing e-mails in 7 days (limit 7)", min(week) + timedelta(days=7))
    assert e9.sendable_at == sorted(week)[1] + timedelta(days=7), "the next one waits for the next slot"
    assert e9.reason == "7 marketing e-mails in 7 days (limit 7)"
    assert (q3.reason, q3.sendable_at) == ("2 marketing e-mails in 24 hours (limit 2)", now + timedelta(days=1))
    assert set(window.started) == {"q1", "q2", "nobody"}


@pytest.mark.parametrize(
    "settings", [{"emails_per_day": 0}, {"emails_per_week": -1}, {"emails_per_day": 3, "emails_per_week": 2}]
)
def test_a_bad_limit_fails_configuration_with_a_clear_message(settings):
    for resource in (GainsightResource, IterableResource):
        with pytest.raises(Exception, match=r"emails_per_(day|week)"):
            resource(**settings)


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "2"])
def test_the_engine_refuses_limits_that_are_not_positive_whole_numbers(value):
    with pytest.raises(ValueError, match="positive whole number"):
        CommunicationLimits(per_day=value)
    assert CommunicationLimits() == CommunicationLimits(per_day=2, per_week=7)
