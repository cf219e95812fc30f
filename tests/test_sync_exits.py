"""Mirror mode and the per-record changelog: exits sent only for records a destination accepted, once; every record
sent logged in `ops.sync_changelog`, which answers the README's questions (DuckDB, and Snowflake via fakesnow)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from devtools.gainsight_emulator import GainsightEmulator
from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.gainsight import COMPANY_UPSERT, PEOPLE_UPSERT, GainsightClient
from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, IterableClient
from marketing_pipelines.defs.gainsight.assets import gainsight_company_sync, gainsight_person_sync
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.resources.gainsight import GainsightResource
from marketing_pipelines.sync import Api, Outbox, run_sync
from marketing_pipelines.sync.changelog import AUDIENCE_ON_DATE_SQL, PERSON_HISTORY_SQL
from marketing_pipelines.sync.destination import person_hash
from marketing_pipelines.sync.gainsight import COMPANIES, PEOPLE
from marketing_pipelines.sync.iterable import IN_AUDIENCE_FIELD, LEFT_AUDIENCE_FIELD, USERS
from marketing_pipelines.sync.ops_tables import changelog_retention_days, ensure_ops_tables
from marketing_pipelines.warehouse import DuckDBWarehouse, Warehouse
from tests.spec import validate_request
from tests.support.gainsight import program_company_rows

API_KEY = "sk-test-exits-0123456789"
README = Path(__file__).resolve().parents[1] / "docs" / "destinations.md"  # the changelog queries users copy
N = 20
LEAVERS = {3, 11}


def email(i: int) -> str:
    return f"user{i:05d}@example.com"


def user_rows(ids: list[int] | range) -> pd.DataFrame:
    return pd.DataFrame(
        [{"email": email(i), "user_id": str(i), "data_fields": json.dumps({"leadStatus": "MQL", "n": i})} for i in ids]
    )


def set_users(warehouse: Warehouse, ids: list[int] | range) -> None:
    warehouse.write_frame("audiences", "iterable_user_audience", user_rows(ids), replace=True)


def sync_users(warehouse: Warehouse, emulator: IterableEmulator | None, run_id: str, **kwargs):
    client = IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=100) if emulator else None
    to = Outbox() if client is None else Api(client)
    return run_sync(warehouse, USERS.batched(50), to, run_id=run_id, **kwargs)


def user_updates(emulator: IterableEmulator) -> list[dict]:
    return [user for path, body in emulator.received_bodies if path == BULK_UPDATE_USERS for user in body["users"]]


def exits_in(users: list[dict]) -> Counter[str]:
    return Counter(user["email"] for user in users if user["dataFields"].get(IN_AUDIENCE_FIELD) is False)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_a_user_who_leaves_gets_one_exit_and_the_changelog_answers_the_readme_questions(engine):
    set_users(engine, range(N))
    with IterableEmulator(api_key=API_KEY, rate_limits={}) as emulator:
        first = sync_users(engine, emulator, "run-1")
        between = utc_now()
        assert all(emulator.users[email(i)][IN_AUDIENCE_FIELD] is True for i in range(N)), "in-audience flag set"
        set_users(engine, [i for i in range(N) if i not in LEAVERS])
        emulator.received_bodies.clear()
        second = sync_users(engine, emulator, "run-2")
        second_updates = user_updates(emulator)
        bodies = [body for _, body in emulator.received_bodies]
        emulator.received_bodies.clear()
        third = sync_users(engine, emulator, "run-3")
        third_updates = user_updates(emulator)
        profiles = emulator.users
    after = utc_now() + timedelta(seconds=1)

    assert (first.added, first.changed, first.removed, first.accepted) == (N, 0, 0, N)
    assert exits_in(second_updates) == Counter({email(i): 1 for i in LEAVERS}), "exactly one exit each"
    assert len(second_updates) == len(LEAVERS), "nothing else is sent"
    for body in bodies:
        validate_request(BULK_UPDATE_USERS, body)
    for i in LEAVERS:
        assert profiles[email(i)][IN_AUDIENCE_FIELD] is False
        assert profiles[email(i)][LEFT_AUDIENCE_FIELD] == after.strftime("%Y-%m-%d")
        assert profiles[email(i)]["n"] == i, "the other fields stay: users are never deleted"
    assert (second.removed, second.accepted, second.sent, second.unchanged) == (2, 2, 2, N - 2)
    assert (third.removed, third.sent, third.requests) == (0, 0, 0) and third_updates == [], "a rerun sends 0"
    synced = {key for (key,) in engine.query("select record_key from ops.sync_state")}
    assert synced == {email(i) for i in range(N) if i not in LEAVERS}, "an accepted exit leaves the sync state"
    runs = engine.query("select run_id, added, changed, removed from ops.sync_runs order by started_at")
    assert [(r, int(a), int(c), int(x)) for r, a, c, x in runs] == [
        ("run-1", N, 0, 0),
        ("run-2", 0, 0, 2),
        ("run-3", 0, 0, 0),
    ]

    history = engine.query(PERSON_HISTORY_SQL, [" USER00003@Example.com "])
    assert [(dest, action, outcome, key, run) for _, dest, action, outcome, key, _, run in history] == [
        ("iterable_users", "added", "accepted", email(3), "run-1"),
        ("iterable_users", "removed", "accepted", email(3), "run-2"),
    ]
    on_date = {str(at): [key for (key,) in engine.query(AUDIENCE_ON_DATE_SQL, ["iterable_users", str(at)])]
               for at in (between, after)}  # fmt: skip
    assert on_date[str(between)] == [email(i) for i in range(N)]
    assert on_date[str(after)] == [email(i) for i in range(N) if i not in LEAVERS]
    skipped = engine.query(
        "select run_id, record_count from ops.sync_changelog where action = 'unchanged-skipped' order by run_id"
    )
    assert [(run, int(n)) for run, n in skipped] == [("run-2", N - 2), ("run-3", N - 2)], "one row per run"
    persons = engine.query("select count(*) from ops.sync_changelog where person = ?", [person_hash(email(3))])
    assert persons == [(2,)]


def test_the_readme_shows_the_changelog_queries_the_tests_run():
    readme = README.read_text()
    assert PERSON_HISTORY_SQL in readme and AUDIENCE_ON_DATE_SQL in readme


def test_a_record_never_accepted_is_never_exited(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "never.duckdb")
    set_users(warehouse, range(N))
    sync_users(warehouse, None, "dry-1")  # dry-run only: nothing accepted
    set_users(warehouse, range(1, N))
    dry = sync_users(warehouse, None, "dry-2")
    assert dry.removed == 0 and dry.changed == 0 and dry.added == N - 1
    outbox = [json.loads(body) for (body,) in warehouse.query("select body from ops.outbox")]
    assert not exits_in([user for body in outbox for user in body["users"]]), "no exit from a dry-run"
    dry_rows = warehouse.query("select distinct outcome from ops.sync_changelog where record_key is not null")
    assert dry_rows == [("dry-run",)]

    rejected = email(5)
    with IterableEmulator(api_key=API_KEY, rate_limits={}, invalid_emails={rejected}) as emulator:
        live = sync_users(warehouse, emulator, "live-1")  # user 5 rejected, the rest accepted
        set_users(warehouse, [i for i in range(1, N) if i != 5])
        emulator.invalid_emails.clear()
        emulator.received_bodies.clear()
        after = sync_users(warehouse, emulator, "live-2")
        sent = user_updates(emulator)
    assert (live.accepted, live.rejected) == (N - 2, 1)
    assert after.removed == 0 and sent == [], "the rejected user was never accepted, so it is never exited"
    assert warehouse.query("select count(*) from ops.sync_changelog where action = 'removed'") == [(0,)]


def test_a_rejected_exit_is_recorded_and_retried_until_accepted(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "retry.duckdb")
    set_users(warehouse, range(N))
    with IterableEmulator(api_key=API_KEY, rate_limits={}) as emulator:
        sync_users(warehouse, emulator, "run-1")
        set_users(warehouse, range(1, N))
        emulator.invalid_emails.add(email(0))
        emulator.received_bodies.clear()
        refused = sync_users(warehouse, emulator, "run-2")
        open_rejections = warehouse.query("select record_key, attempts, resolved from ops.sync_rejections")
        still_synced = warehouse.query("select count(*) from ops.sync_state where record_key = ?", [email(0)])
        emulator.invalid_emails.clear()
        emulator.received_bodies.clear()
        retried = sync_users(warehouse, emulator, "run-3")
        retried_updates = user_updates(emulator)
        emulator.received_bodies.clear()
        quiet = sync_users(warehouse, emulator, "run-4")
    assert (refused.removed, refused.rejected, refused.accepted) == (1, 1, 0)
    assert open_rejections == [(email(0), 1, False)] and still_synced == [(1,)]
    assert (retried.removed, retried.accepted) == (1, 1) and exits_in(retried_updates) == Counter({email(0): 1})
    assert warehouse.query("select resolved from ops.sync_rejections") == [(True,)]
    assert warehouse.query("select count(*) from ops.sync_state where record_key = ?", [email(0)]) == [(0,)]
    assert (quiet.removed, quiet.sent) == (0, 0)
    log = warehouse.query(
        "select run_id, action, outcome from ops.sync_changelog where record_key = ? order by logged_at", [email(0)]
    )
    assert log == [("run-1", "added", "accepted"), ("run-2", "removed", "rejected"), ("run-3", "removed", "accepted")]


def test_retention_prunes_old_rows_but_keeps_what_put_each_synced_record_in_its_state(tmp_path, monkeypatch):
    warehouse = DuckDBWarehouse(tmp_path / "retention.duckdb")
    set_users(warehouse, range(N))
    with IterableEmulator(api_key=API_KEY, rate_limits={}) as emulator:
        sync_users(warehouse, emulator, "run-1")
        warehouse.execute("update ops.sync_changelog set logged_at = logged_at - interval 500 day")
        set_users(warehouse, range(1, N))
        monkeypatch.setenv("SYNC_CHANGELOG_RETENTION_DAYS", "400")
        sync_users(warehouse, emulator, "run-2")
    rows = warehouse.query("select run_id, action, count(*) from ops.sync_changelog group by 1, 2 order by 1, 2")
    assert rows == [("run-1", "added", N - 1), ("run-2", "removed", 1), ("run-2", "unchanged-skipped", 1)]
    assert warehouse.query(AUDIENCE_ON_DATE_SQL, ["iterable_users", str(utc_now() + timedelta(seconds=1))]) == [
        (email(i),) for i in range(1, N)
    ], "the audience is still answerable after pruning"


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1.5", "99999"])
def test_a_bad_retention_setting_fails_with_a_clear_message(value):
    with pytest.raises(ValueError, match="SYNC_CHANGELOG_RETENTION_DAYS must be"):
        changelog_retention_days({"SYNC_CHANGELOG_RETENTION_DAYS": value})
    assert (
        changelog_retention_days({}) == 400 and changelog_retention_days({"SYNC_CHANGELOG_RETENTION_DAYS": "30"}) == 30
    )


def test_an_existing_sync_runs_table_gains_the_new_columns(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "old.duckdb")
    warehouse.execute(
        [
            "create schema ops",
            "create table ops.sync_runs (run_id varchar, destination varchar not null, mode varchar not null, "
            "started_at timestamp not null, finished_at timestamp not null, considered bigint not null, "
            "unchanged bigint not null, sent bigint not null, accepted bigint not null, rejected bigint not null, "
            "requests bigint not null, retries bigint not null, seconds double not null)",
        ]
    )
    ensure_ops_tables(warehouse)
    ensure_ops_tables(warehouse)  # idempotent
    columns = {name for (name,) in warehouse.query("select column_name from information_schema.columns "
                                                   "where table_name = 'sync_runs'")}  # fmt: skip
    assert {"added", "changed", "removed"} <= columns


# -- Gainsight ---------------------------------------------------------------------------------------------------


def recipient_rows(rows: list[tuple[int, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "recipient_key": f"{70_000_000 + i}:{address}",
                "account_id": 70_000_000 + i,
                "email": address,
                "role": "Sold-To" if reason == "sold_to_fallback" else "GitLab Admin",
                "recipient_reason": reason,
                "receives_surveys": reason == "gitlab_admin",
                "program": "onboarding",
                "segment": "Scale",
                "skip_reason": None,
            }
            for i, address, reason in rows
        ]
    )


def test_gainsight_clears_the_program_fields_of_leavers_and_touches_nothing_else(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "gainsight.duckdb")
    resources = {"warehouse": WarehouseResource(duckdb_path=str(warehouse.path))}
    before = [(0, "admin0@example.com", "gitlab_admin"), (1, "sold1@example.com", "sold_to_fallback")]
    before += [(2, "admin2@example.com", "gitlab_admin")]
    warehouse.write_frame("audiences", "gainsight_program_companies", program_company_rows([0, 1, 2]), replace=True)
    warehouse.write_frame("audiences", "gainsight_program_recipients", recipient_rows(before), replace=True)
    with GainsightEmulator(access_key="k", calls_per_window=100, window_seconds=1) as emu:
        resources["gainsight"] = GainsightResource(access_key="k", base_url=emu.base_url, window_seconds=1)
        dg.materialize([gainsight_company_sync, gainsight_person_sync], resources=resources)
        # account 1 now has a GitLab Admin: its Sold-To fallback no longer qualifies; account 2 leaves the programs
        after = [before[0], (1, "admin1@example.com", "gitlab_admin")]
        warehouse.write_frame("audiences", "gainsight_program_companies", program_company_rows([0, 1]), replace=True)
        warehouse.write_frame("audiences", "gainsight_program_recipients", recipient_rows(after), replace=True)
        writes_before = Counter(emu.writes)
        emu.received_bodies.clear()
        result = dg.materialize([gainsight_company_sync, gainsight_person_sync], resources=resources)
        bodies = list(emu.received_bodies)
        writes = Counter(emu.writes) - writes_before
        company_2 = emu.company(GitLab_Account_ID__gc=70_000_002)
        sold_to = emu.association("sold1@example.com", GitLab_Account_ID__gc=70_000_001)
        admin_2 = emu.association("admin2@example.com", GitLab_Account_ID__gc=70_000_002)
        untouched = emu.company(GitLab_Account_ID__gc=70_000_000)
        writes_rerun = Counter(emu.writes)
        client = GainsightClient("k", emu.base_url, window_seconds=1)
        rerun = [run_sync(warehouse, d, Api(client), run_id="rerun") for d in (COMPANIES, PEOPLE)]
        assert Counter(emu.writes) == writes_rerun, "a rerun sends 0 exit requests"
    assert result.success
    assert writes == Counter(
        {
            ("Company", "70000002"): 1,  # the exit
            ("Person", "admin1@example.com"): 1,  # the new recipient
            ("Person", "sold1@example.com"): 1,  # the exits
            ("Person", "admin2@example.com"): 1,
        }
    ), "nothing we did not send, and nothing unchanged, is touched"
    assert company_2["Customer_Program__gc"] is None and company_2["Name"] == "Company 2", "program cleared only"
    assert untouched["Customer_Program__gc"] == "onboarding"
    for association in (sold_to, admin_2):
        assert association["Customer_Program__gc"] is None and association["Recipient_Reason__gc"] is None
        assert association["Receives_Surveys__gc"] is False and association["Role__gc"] is None
    assert {path for path, _ in bodies} == {COMPANY_UPSERT, PEOPLE_UPSERT}
    metadata = {
        event.asset_key.path[-1]: event.step_materialization_data.materialization.metadata
        for event in result.get_asset_materialization_events()
    }
    assert metadata["gainsight_company_sync"]["removed"].value == 1
    assert metadata["gainsight_person_sync"]["added"].value == 1
    assert metadata["gainsight_person_sync"]["removed"].value == 2
    assert [(r.removed, r.sent) for r in rerun] == [(0, 0), (0, 0)]
    people_log = warehouse.query(
        "select action, count(*) from ops.sync_changelog where destination = 'gainsight_people' "
        "and person = ? group by action order by action",
        [person_hash("sold1@example.com")],
    )
    assert people_log == [("added", 1), ("removed", 1)]
    companies_without_person = warehouse.query(
        "select count(*) from ops.sync_changelog where destination = 'gainsight_companies' and person is not null"
    )
    assert companies_without_person == [(0,)]


def test_a_gainsight_exit_for_a_company_gainsight_no_longer_has_is_rejected_not_created(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "gone.duckdb")
    warehouse.write_frame("audiences", "gainsight_program_companies", program_company_rows([0, 1]), replace=True)
    with GainsightEmulator(access_key="k", calls_per_window=100, window_seconds=1) as emu:
        client = GainsightClient("k", emu.base_url, window_seconds=1)
        run_sync(warehouse, COMPANIES, Api(client), run_id="run-1")
        emu.reset()  # the tenant lost its companies
        warehouse.write_frame("audiences", "gainsight_program_companies", program_company_rows([0]), replace=True)
        report = run_sync(warehouse, COMPANIES, Api(client), run_id="run-2")
        assert emu.companies == {}, "an exit never creates a company"
    assert (report.removed, report.rejected) == (1, 1)
    ((key, reason),) = warehouse.query("select record_key, reason from ops.sync_rejections where not resolved")
    assert key == "70000001" and "Name is required" in reason
