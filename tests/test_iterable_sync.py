"""The Iterable user sync end to end: sync engine + Iterable client against the loopback emulator."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from marketing_pipelines.clients._http import ApiError
from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, IterableClient
from marketing_pipelines.devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.sync import run_sync
from marketing_pipelines.sync.iterable import USER_AUDIENCE, IterableUserDestination, user_schema
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.spec import load_spec, validate_request

API_KEY = "sk-test-0123456789abcdef"
USERS = 300


def audience_rows(n: int, *, changed: set[int] = frozenset(), bad: set[int] = frozenset()) -> pd.DataFrame:
    rows = []
    for i in range(n):
        fields = {"namespaces": [{"NAMESPACE_ID": i, "USER_ACCESS_LEVEL": 50}], "leadStatus": "MQL"}
        if i in changed:
            fields["leadStatus"] = "Accepted"
        rows.append(
            {
                "email": f"not-an-email-{i}" if i in bad else f"user{i:05d}@example.com",
                "user_id": str(i),
                "person_id": i,
                "user_created_at": datetime(2026, 11, 1),
                "data_fields": json.dumps(fields),
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    warehouse.write_frame("audiences", "iterable_user_audience", audience_rows(USERS), replace=True)
    return warehouse


def sync(warehouse: DuckDBWarehouse, emulator: IterableEmulator | None, *, max_records: int = 100):
    client = IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=50) if emulator else None
    destination = IterableUserDestination(client, max_records=max_records)
    return run_sync(warehouse, USER_AUDIENCE, destination, dry_run=client is None, run_id="test-run")


def received_emails(emulator: IterableEmulator) -> Counter[str]:
    return Counter(
        user["email"] for path, body in emulator.received_bodies if path == BULK_UPDATE_USERS for user in body["users"]
    )


def test_vendored_user_schema_matches_the_spec():
    assert user_schema()["definitions"]["OptionalApiUser"] == load_spec()["definitions"]["OptionalApiUser"]


def test_first_sync_sends_everything_in_spec_valid_batches(warehouse):
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}) as emulator:
        report = sync(warehouse, emulator)
        bodies = [body for path, body in emulator.received_bodies if path == BULK_UPDATE_USERS]
    assert (report.considered, report.sent, report.accepted, report.rejected) == (USERS, USERS, USERS, 0)
    assert report.requests == len(bodies) == 3
    for body in bodies:
        validate_request(BULK_UPDATE_USERS, body)
    assert len(emulator.users) == USERS
    assert warehouse.query("select count(*) from ops.sync_state where destination = 'iterable_users'") == [(USERS,)]
    (mode, sent, accepted) = warehouse.query("select mode, sent, accepted from ops.sync_runs")[0]
    assert (mode, sent, accepted) == ("live", USERS, USERS)


def test_rerun_with_nothing_changed_sends_no_request(warehouse):
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}) as emulator:
        sync(warehouse, emulator)
        before = emulator.requests_by_path[BULK_UPDATE_USERS]
        report = sync(warehouse, emulator)
        assert emulator.requests_by_path[BULK_UPDATE_USERS] == before
    assert (report.sent, report.requests, report.unchanged) == (0, 0, USERS)


def test_rerun_with_one_percent_changed_sends_exactly_those(warehouse):
    changed = {7, 150, 299}
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}) as emulator:
        sync(warehouse, emulator)
        warehouse.write_frame(
            "audiences", "iterable_user_audience", audience_rows(USERS, changed=changed), replace=True
        )
        emulator.reset()
        report = sync(warehouse, emulator)
    assert report.sent == len(changed) and report.unchanged == USERS - len(changed)
    assert set(received_emails(emulator)) == {f"user{i:05d}@example.com" for i in changed}
    assert emulator.users["user00007@example.com"]["leadStatus"] == "Accepted"


def test_throttling_errors_and_timeouts_end_with_every_record_accepted_once(warehouse):
    with IterableEmulator(
        api_key=API_KEY,
        rate_limits={BULK_UPDATE_USERS: 50},
        fault_rates={"429": 0.3, "500": 0.15},
        seed=3,
    ) as emulator:
        report = sync(warehouse, emulator, max_records=20)
    assert report.accepted == USERS and report.rejected == 0
    assert report.retries > 0
    assert report.retries == emulator.fault_counts["429"] + emulator.fault_counts["500"]
    assert set(emulator.users) == {f"user{i:05d}@example.com" for i in range(USERS)}


def test_partial_failure_records_exactly_the_rejected_and_retries_them_next_run(warehouse):
    invalid = {"user00003@example.com", "user00042@example.com"}
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}, invalid_emails=invalid) as emulator:
        first = sync(warehouse, emulator)
        rejections = warehouse.query(
            "select record_key, reason, attempts, resolved from ops.sync_rejections order by record_key"
        )
        assert (first.accepted, first.rejected) == (USERS - 2, 2)
        assert rejections == [(email, "invalidEmails", 1, False) for email in sorted(invalid)]
        emulator.invalid_emails.clear()
        emulator.reset()
        second = sync(warehouse, emulator)
    assert (second.sent, second.accepted) == (2, 2)
    assert set(received_emails(emulator)) == invalid
    assert warehouse.query("select count(*) from ops.sync_rejections where not resolved") == [(0,)]


def test_malformed_audience_row_is_rejected_with_a_reason_and_the_rest_are_sent(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "bad.duckdb")
    warehouse.write_frame("audiences", "iterable_user_audience", audience_rows(50, bad={4}), replace=True)
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}) as emulator:
        report = sync(warehouse, emulator)
    assert (report.accepted, report.rejected) == (49, 1)
    ((key, reason),) = warehouse.query("select record_key, reason from ops.sync_rejections")
    assert key == "not-an-email-4" and reason.startswith("invalid record: not an e-mail address")


def test_dry_run_writes_the_outbox_and_marks_nothing_synced(warehouse):
    report = sync(warehouse, None)
    assert report.mode == "dry-run" and report.sent == USERS and report.requests == 3
    bodies = [json.loads(body) for (body,) in warehouse.query("select body from ops.outbox order by created_at")]
    assert sum(len(body["users"]) for body in bodies) == USERS
    for body in bodies:
        validate_request(BULK_UPDATE_USERS, body)
    assert warehouse.query("select count(*) from ops.sync_state") == [(0,)]
    assert sync(warehouse, None).sent == USERS, "dry-run marks nothing synced, so the next run sends again"


def test_api_key_never_appears_in_logs_outbox_or_errors(warehouse, caplog):
    caplog.set_level(logging.DEBUG)
    with (
        IterableEmulator(api_key="another-key", rate_limits={BULK_UPDATE_USERS: 50}) as emulator,
        pytest.raises(ApiError) as raised,
    ):
        sync(warehouse, emulator)
    sync(warehouse, None)
    assert API_KEY not in str(raised.value) and API_KEY not in repr(raised.value)
    assert API_KEY not in caplog.text
    outbox = warehouse.query("select string_agg(body, '') from ops.outbox")[0][0]
    assert API_KEY not in outbox
    assert API_KEY not in json.dumps(warehouse.query_df("select * from ops.sync_runs").astype(str).to_dict())


KILLABLE_SYNC = """
import sys
from marketing_pipelines.clients.iterable import IterableClient
from marketing_pipelines.sync import run_sync
from marketing_pipelines.sync.iterable import USER_AUDIENCE, IterableUserDestination
from marketing_pipelines.warehouse import DuckDBWarehouse
client = IterableClient(sys.argv[3], sys.argv[2], bulk_update_per_second=5)
run_sync(DuckDBWarehouse(sys.argv[1]), USER_AUDIENCE, IterableUserDestination(client, max_records=10),
         dry_run=False, run_id="killed")
"""


def test_sync_killed_mid_run_then_rerun_holds_every_record_once(warehouse):
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 5}) as emulator:
        process = subprocess.Popen(
            [sys.executable, "-c", KILLABLE_SYNC, str(warehouse.path), emulator.base_url, API_KEY],
            env={**os.environ},
        )
        deadline = time.monotonic() + 60
        while emulator.requests_by_path[BULK_UPDATE_USERS] < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        synced_before = warehouse.query("select count(*) from ops.sync_state")[0][0]
        assert 0 < synced_before < USERS, "the kill should land mid-sync"
        report = run_sync(
            warehouse,
            USER_AUDIENCE,
            IterableUserDestination(
                IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=50), max_records=10
            ),
            dry_run=False,
            run_id="rerun",
        )
    receipts = received_emails(emulator)
    assert set(emulator.users) == {f"user{i:05d}@example.com" for i in range(USERS)}, "nothing lost"
    assert report.sent == USERS - synced_before, "the rerun sends only what is left"
    assert sum(receipts.values()) - USERS <= 10, "at most the one in-flight batch is sent twice"
