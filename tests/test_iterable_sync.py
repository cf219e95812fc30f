"""The Iterable user sync end to end: sync engine + Iterable client against the loopback emulator."""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients._http import ApiError
from marketing_pipelines.clients.iterable import BULK_SUBSCRIPTION_ACTION, BULK_UPDATE_USERS, TRACK_BULK, IterableClient
from marketing_pipelines.defs.destinations import transport
from marketing_pipelines.defs.iterable import checks
from marketing_pipelines.defs.iterable.assets import iterable_user_sync
from marketing_pipelines.defs.iterable.checks import iterable_user_sync_health
from marketing_pipelines.resources import IterableResource, SyncHealthResource, WarehouseResource
from marketing_pipelines.sync import Api, Outbox, run_sync
from marketing_pipelines.sync.engine import IN_FLIGHT, IsolationLimitError
from marketing_pipelines.sync.iterable import (
    SIGNUP_PROFILES,
    TRIAL_EVENTS,
    opt_outs,
    user_schema,
)
from marketing_pipelines.sync.iterable import USERS as USER_SYNC
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.spec import load_spec, validate_request
from tests.support.metadata import sample_records

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


def sync(warehouse: DuckDBWarehouse, emulator: IterableEmulator | None, *, max_records: int = 100, **kwargs):
    client = IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=50) if emulator else None
    transport = Outbox() if client is None else Api(client)
    return run_sync(warehouse, USER_SYNC.batched(max_records), transport, run_id="test-run", **kwargs)


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


def test_the_dry_run_setting_writes_the_outbox_even_with_an_api_key(warehouse):
    resources = {"warehouse": WarehouseResource(duckdb_path=str(warehouse.path))}
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}) as emulator:
        forced = IterableResource(api_key=API_KEY, base_url=emulator.base_url, dry_run=True)
        assert forced.is_dry_run and isinstance(transport(forced), Outbox)
        result = iterable_user_sync(context=dg.build_asset_context(), iterable=forced, **resources)
        assert sum(emulator.requests_by_path.values()) == 0, "nothing reaches the API"
        live = IterableResource(api_key=API_KEY, base_url=emulator.base_url)
        assert isinstance(transport(live), Api)
        rerun = iterable_user_sync(context=dg.build_asset_context(), iterable=live, **resources)
    assert result.metadata["mode"] == "dry-run" and result.metadata["sent"] == USERS
    assert warehouse.query("select count(*), sum(record_count) from ops.outbox") == [(1, USERS)]
    assert warehouse.query("select count(*) from ops.sync_state") == [(USERS,)]
    assert rerun.metadata["mode"] == "live" and rerun.metadata["accepted"] == USERS and len(emulator.users) == USERS


def test_run_config_dry_run_previews_with_the_api_key_set(warehouse):
    """`dry_run: true` in a run's config (launchpad or CLI) writes the outbox and marks nothing synced, even live;
    the next run without it sends everything."""
    preview = {"ops": {"iterable_user_sync": {"config": {"dry_run": True}}}}
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}) as emulator:
        resources = {
            "warehouse": WarehouseResource(duckdb_path=str(warehouse.path)),
            "iterable": IterableResource(api_key=API_KEY, base_url=emulator.base_url),
        }
        previewed = dg.materialize([iterable_user_sync], resources=resources, run_config=preview)
        assert sum(emulator.requests_by_path.values()) == 0, "a preview sends nothing"
        live = dg.materialize([iterable_user_sync], resources=resources)
    (preview_event,) = previewed.asset_materializations_for_node("iterable_user_sync")
    assert preview_event.metadata["mode"].value == "dry-run"
    assert preview_event.metadata["added"].value == USERS and preview_event.metadata["accepted"].value == 0
    assert warehouse.query("select sum(record_count) from ops.outbox") == [(USERS,)]
    (live_event,) = live.asset_materializations_for_node("iterable_user_sync")
    assert live_event.metadata["mode"].value == "live" and live_event.metadata["accepted"].value == USERS
    assert len(emulator.users) == USERS
    assert warehouse.query("select count(*) from ops.sync_state") == [(USERS,)]


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
from marketing_pipelines.sync import Api, run_sync
from marketing_pipelines.sync.iterable import USERS
from marketing_pipelines.warehouse import DuckDBWarehouse
client = IterableClient(sys.argv[3], sys.argv[2], bulk_update_per_second=5)
run_sync(DuckDBWarehouse(sys.argv[1]), USERS.batched(10), Api(client), run_id="killed")
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
            USER_SYNC.batched(10),
            Api(IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=50)),
            run_id="rerun",
        )
    receipts = received_emails(emulator)
    assert set(emulator.users) == {f"user{i:05d}@example.com" for i in range(USERS)}, "nothing lost"
    assert report.sent == USERS - synced_before, "the rerun sends only what is left"
    assert sum(receipts.values()) - USERS <= IN_FLIGHT * 10, "at most the batches in flight are sent twice"


POISON_USERS = 5_200
#: Two bad records in the first request of 1,000, one in the fourth; each fails its whole request with a 400.
POISON = {"user00100@example.com", "user00150@example.com", "user03333@example.com"}
POISON_REASON = (
    "refused alone with HTTP 400: BadParams: Invalid request body: users[0] u***@example.com failed validation"
)


def test_poison_records_are_isolated_and_every_other_record_is_delivered_in_the_same_run(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "poison.duckdb")
    warehouse.write_frame("audiences", "iterable_user_audience", audience_rows(POISON_USERS), replace=True)
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}, poison_emails=POISON) as emulator:
        first = sync(warehouse, emulator, max_records=1000)
        bodies = [body for path, body in emulator.received_bodies if path == BULK_UPDATE_USERS]
        requests, refused = emulator.requests_by_path[BULK_UPDATE_USERS], emulator.status_counts[400]
        statuses = dict(emulator.status_counts)
        delivered, receipts = set(emulator.users), Counter(emulator.user_receipts)
        check = iterable_user_sync_health(
            warehouse=WarehouseResource(duckdb_path=str(warehouse.path)), sync_health=SyncHealthResource()
        )
        emulator.reset()
        rerun = sync(warehouse, emulator, max_records=1000)
        rerun_sent = received_emails(emulator)

    everyone = {f"user{i:05d}@example.com" for i in range(POISON_USERS)}
    assert (first.sent, first.accepted, first.rejected) == (POISON_USERS, POISON_USERS - 3, 3)
    assert delivered == everyone - POISON and set(receipts.values()) == {1}, "every other record accepted once"
    assert warehouse.query("select count(*) from ops.sync_state") == [(POISON_USERS - 3,)]
    rejections = warehouse.query("select record_key, reason, attempts from ops.sync_rejections where not resolved")
    assert sorted(key for key, _, _ in rejections) == sorted(POISON)
    assert {reason for _, reason, _ in rejections} == {POISON_REASON}, "the emulator's message, e-mail masked"
    # the work is bounded: 6 batches, then about 2·log2(n) requests per bad record, all counted in the run
    assert first.isolated_records == 3 and 0 < first.bisected_requests <= 2 * 3 * math.ceil(math.log2(1000))
    assert first.requests == requests == 6 + first.bisected_requests and first.retries == 0
    assert refused == requests - statuses[200] > 3
    runs = warehouse.query("select requests, accepted, rejected from ops.sync_runs order by started_at")
    assert runs == [(first.requests, POISON_USERS - 3, 3), (rerun.requests, 0, 3)] and rerun.requests == 5
    assert first.as_metadata()["bisected_requests"] == first.bisected_requests
    for body in bodies:
        validate_request(BULK_UPDATE_USERS, body)
    # the run succeeded; its WARN check names the rejected records (masked) with the reason
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["failing_records"].value == 3
    assert sample_records(check) == [
        {"person_id": i, "email": "u***@example.com", "reason": POISON_REASON} for i in (100, 150, 3333)
    ]
    # the rerun sends only the rejected records, which the destination still refuses
    assert set(rerun_sent) == POISON and (rerun.sent, rerun.accepted, rerun.rejected) == (3, 0, 3)
    assert emulator.users == {}
    assert sorted(warehouse.query("select attempts from ops.sync_rejections where not resolved")) == [(2,)] * 3


def test_a_field_of_the_wrong_type_fails_its_request_and_only_that_user_is_rejected(warehouse):
    rows = audience_rows(USERS)
    rows.loc[42, "data_fields"] = json.dumps({"leadStatus": 7})
    warehouse.write_frame("audiences", "iterable_user_audience", rows, replace=True)
    with IterableEmulator(
        api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}, field_types={"leadStatus": "string"}
    ) as emulator:
        report = sync(warehouse, emulator)
        ((key, reason),) = warehouse.query("select record_key, reason from ops.sync_rejections")
        assert len(emulator.users) == USERS - 1
        emulator.field_types.clear()  # the project's field type changed: the record is accepted on the next run
        retried = sync(warehouse, emulator)
    assert (report.accepted, report.rejected, report.isolated_records) == (USERS - 1, 1, 1)
    assert key == "user00042@example.com"
    assert reason == (
        "refused alone with HTTP 400: RequestFieldsTypesMismatched: "
        "users[0].dataFields.leadStatus is int, the project field is string"
    )
    assert (retried.sent, retried.accepted, retried.requests) == (1, 1, 1)
    assert warehouse.query("select resolved from ops.sync_rejections") == [(True,)]
    assert emulator.users["user00042@example.com"]["leadStatus"] == 7


def test_a_request_over_the_body_limit_is_split_and_a_record_too_large_alone_is_rejected(warehouse):
    rows = audience_rows(USERS)
    rows.loc[7, "data_fields"] = json.dumps({"notes": "x" * 12_000})
    warehouse.write_frame("audiences", "iterable_user_audience", rows, replace=True)
    # requests of 100 users (about 16 kB) go over this emulator's 10 kB limit; halves of 50 fit
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}, max_body_bytes=10_000) as emulator:
        report = sync(warehouse, emulator)
        statuses = dict(emulator.status_counts)
    assert (report.accepted, report.rejected, report.isolated_records) == (USERS - 1, 1, 1)
    ((key, reason),) = warehouse.query("select record_key, reason from ops.sync_rejections")
    assert key == "user00007@example.com"
    assert reason == "refused alone with HTTP 413: BatchTooLarge: request body over 10000 bytes"
    assert statuses[413] >= 3 and len(emulator.users) == USERS - 1
    assert report.requests == statuses[413] + statuses[200] == 3 + report.bisected_requests


def test_a_refusal_of_every_record_stops_the_run_after_the_isolation_limit(warehouse):
    everyone = {f"user{i:05d}@example.com" for i in range(USERS)}
    with IterableEmulator(api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}, poison_emails=everyone) as emulator:
        with pytest.raises(IsolationLimitError, match="more than 3 records refused alone"):
            sync(warehouse, emulator, max_isolated=3)
        requests = emulator.requests_by_path[BULK_UPDATE_USERS]
    assert requests <= 2 * 4 + math.ceil(math.log2(100)), "bounded: about two requests per record refused alone"
    assert warehouse.query("select count(*) from ops.sync_rejections") == [(3,)]
    assert warehouse.query("select count(*) from ops.sync_state") == [(0,)], "nothing marked synced"


def test_throttling_and_server_errors_never_split_a_batch(warehouse):
    with IterableEmulator(
        api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: 50}, scripted_faults=["429", "500", "500", None]
    ) as emulator:
        report = sync(warehouse, emulator)
    assert (report.accepted, report.bisected_requests, report.retries, report.requests) == (USERS, 0, 3, 6)


def test_unsubscribes_signup_profiles_and_events_isolate_a_poison_email_and_their_checks_name_it(tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "events.duckdb")
    emails = [f"signup{i:03d}@example.com" for i in range(120)]
    # the people who unsubscribed are not the ones signing up: a signup event of an unsubscribed person waits for
    # its opt-out (tested with the signups), which would hold these events back
    unsubscribed = [f"unsub{i:03d}@example.com" for i in range(120)]
    poison = {"signup077@example.com", "unsub077@example.com"}
    warehouse.write_frame(
        "staging",
        "stg_marketo__unsubscribes",
        pd.DataFrame({"event_id": [f"unsub-{i:03d}" for i in range(120)], "email": unsubscribed}),
        replace=True,
    )
    warehouse.write_frame(  # no CRM contact opted out
        "marts",
        "marketing_contacts",
        pd.DataFrame({"email": pd.Series(dtype="str"), "is_opted_in": pd.Series(dtype="bool")}),
        replace=True,
    )
    warehouse.write_frame(  # no free registrations: the signup pushes exclude personal ones by this view
        "staging",
        "stg_signups__free_registration_events",
        pd.DataFrame(
            {
                "event_key": pd.Series(dtype="str"),
                "user_id": pd.Series(dtype="int64"),
                "is_company_namespace": pd.Series(dtype="bool"),
            }
        ),
        replace=True,
    )
    events = pd.DataFrame(
        {
            "event_key": [f"trial_signups:evt-{i:03d}" for i in range(120)],
            "event_kind": "trial_signups",
            "event_id": [f"evt-{i:03d}" for i in range(120)],
            "email": emails,
            "event_name": "saasTrial",
            "created_at": 1_790_000_000,
            "data_fields": json.dumps({"company": "Acme", "country": "Germany"}),
        }
    )
    warehouse.write_frame("audiences", "iterable_trial_events", events, replace=True)
    with IterableEmulator(api_key=API_KEY, rate_limits={}, poison_emails=poison) as emulator:
        client = IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=100, track_bulk_per_second=100,
                                subscriptions_per_second=100)  # fmt: skip
        destinations = [opt_outs(4321), SIGNUP_PROFILES, TRIAL_EVENTS]
        reports = [run_sync(warehouse, d.batched(50), Api(client), run_id="events") for d in destinations]
        bodies = list(emulator.received_bodies)
        events_received = Counter(emulator.event_receipts)
    assert [(r.accepted, r.rejected, r.isolated_records) for r in reports] == [(119, 1, 1)] * 3
    assert len(events_received) == 119 and set(events_received.values()) == {1}, "each good event tracked once"
    for path, body in bodies:
        if path == TRACK_BULK:
            validate_request(TRACK_BULK, body)
        elif path == BULK_UPDATE_USERS:
            validate_request(BULK_UPDATE_USERS, body)
        else:
            validate_request(BULK_SUBSCRIPTION_ACTION, body, method="put")
    resource = WarehouseResource(duckdb_path=str(warehouse.path))
    for check, key, masked in (
        (checks.iterable_unsubscribe_sync_health, "unsub-077", "u***@example.com"),
        (checks.iterable_signup_profile_sync_health, "trial_signups:evt-077", "s***@example.com"),
        (checks.iterable_trial_event_sync_health, "trial_signups:evt-077", "s***@example.com"),
    ):
        result = check(warehouse=resource, sync_health=SyncHealthResource())
        assert not result.passed and result.severity.value == "WARN"
        ((sample,),) = [sample_records(result)]
        assert sample["event_id"] == key and sample["email"] == masked
        assert sample["reason"].startswith("refused alone with HTTP 400: BadParams: Invalid request body:")
    own = iterable_user_sync_health(warehouse=resource, sync_health=SyncHealthResource())
    assert own.passed, "each check watches its own destination"


def test_two_requests_in_flight_overlap_and_never_put_more_than_the_limit_in_any_window(tmp_path):
    """The engine keeps two requests on the wire; the limiter still keeps every window of the emulator (which stamps a
    request when it arrives) at the limit over 60 requests, each answered only after a delay; a request slower to
    arrive than the limiter's allowance (a loaded machine) draws a 429, retried, and widens the allowance."""
    limit, requests, delay = 20, 60, 0.15
    warehouse = DuckDBWarehouse(tmp_path / "in-flight.duckdb")
    warehouse.write_frame("audiences", "iterable_user_audience", audience_rows(requests), replace=True)
    with IterableEmulator(
        api_key=API_KEY, rate_limits={BULK_UPDATE_USERS: limit}, fault_rates={"slow": 1.0}, slow_seconds=delay
    ) as emulator:
        client = IterableClient(API_KEY, emulator.base_url, bulk_update_per_second=limit)
        report = run_sync(warehouse, USER_SYNC.batched(1), Api(client), run_id="in-flight")
        arrivals = sorted(emulator.request_times_by_path[BULK_UPDATE_USERS])
    throttled = emulator.status_counts[429]
    assert throttled <= 6 + 1, "each 429 doubles the 20 ms allowance; past a second requests count until answered"
    assert (report.requests, report.accepted, report.retries) == (requests + throttled, requests, throttled)
    assert emulator.status_counts[200] == requests
    assert emulator.max_accepted_in_any_window(BULK_UPDATE_USERS) <= limit
    # one request at a time would leave at least `delay` between arrivals: the next leaves after the answer
    assert min(later - earlier for earlier, later in itertools.pairwise(arrivals)) < delay, "two were on the wire"
    assert warehouse.query("select count(*) from ops.sync_state") == [(requests,)]
    assert warehouse.query("select count(*), count(distinct record_key) from ops.sync_changelog") == [
        (requests, requests)
    ], "each outcome recorded exactly once"
