"""Marketo unsubscribes → Iterable: sync engine + client + loopback emulator, and the asset's settings.

Each unsubscribe event opts the person out of the opt-in `GitLab Marketing` message type ONLY, with the bulk
subscription action `PUT /api/subscriptions/messageType/{id}?action=unsubscribe`, once per event.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest

from devtools.iterable_emulator import SUBSCRIPTION_ACTION_PREFIX, IterableEmulator
from marketing_pipelines.clients.iterable import BULK_SUBSCRIPTION_ACTION, IterableClient
from marketing_pipelines.defs.iterable.assets import iterable_unsubscribe_sync
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.resources.iterable import MESSAGE_TYPE_ID_ENV, IterableResource
from marketing_pipelines.sync import Api, Outbox, run_sync
from marketing_pipelines.sync.iterable import opt_outs
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.spec import validate_request, validate_response
from tests.support.http import fast_retry

API_KEY = "sk-test-unsub-0123456789"
GITLAB_MARKETING = 4321
OTHER_TYPE = 99
PATH = f"/api/subscriptions/messageType/{GITLAB_MARKETING}"
EVENTS = 120
FAST = {SUBSCRIPTION_ACTION_PREFIX: 1000}


def unsubscribe_rows(n: int, *, extra: list[tuple[str, str | None]] = ()) -> pd.DataFrame:
    rows = [(f"evt-{i:05d}", f"person{i:05d}@example.com") for i in range(n)] + list(extra)
    return pd.DataFrame(
        [{"event_id": e, "email": m, "unsubscribed_at": pd.Timestamp("2026-12-01")} for e, m in rows],
        columns=["event_id", "email", "unsubscribed_at"],
    )


def make_warehouse(path: Path, frame: pd.DataFrame) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(path)
    warehouse.write_frame("staging", "stg_marketo__unsubscribes", frame, replace=True)
    return warehouse


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return make_warehouse(tmp_path / "warehouse.duckdb", unsubscribe_rows(EVENTS))


def client_for(emulator: IterableEmulator, **kwargs) -> IterableClient:
    options = {
        "subscriptions_per_second": 1000,
        "retry": fast_retry(),
        **kwargs,
    }
    return IterableClient(API_KEY, emulator.base_url, **options)


def sync(warehouse, emulator: IterableEmulator | None, *, max_records: int = 50, **client_kwargs):
    client = client_for(emulator, **client_kwargs) if emulator else None
    transport = Outbox() if client is None else Api(client)
    return run_sync(warehouse, opt_outs(GITLAB_MARKETING).batched(max_records), transport, run_id="test-run")


def put_bodies(emulator: IterableEmulator) -> list[dict]:
    return [body for path, body in emulator.received_bodies if path.startswith(SUBSCRIPTION_ACTION_PREFIX)]


def sent_emails(emulator: IterableEmulator) -> Counter[str]:
    return Counter(email for body in put_bodies(emulator) for email in body["users"])


# -- the client and the spec ---------------------------------------------------------------------------------


def test_every_put_body_and_reply_matches_the_spec(warehouse):
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST) as emulator:
        report = sync(warehouse, emulator)
        bodies = put_bodies(emulator)
        reply = client_for(emulator).bulk_subscription_action(
            "messageType", GITLAB_MARKETING, "unsubscribe", ["person00000@example.com"]
        )
    assert (report.sent, report.accepted, report.rejected) == (EVENTS, EVENTS, 0)
    assert report.requests == len(bodies) == 3
    assert {path for path, _ in emulator.received_bodies} == {PATH}
    for body in bodies:
        validate_request(BULK_SUBSCRIPTION_ACTION, body, method="put")
    validate_response(BULK_SUBSCRIPTION_ACTION, reply.raw, method="put")
    assert reply.failed == {} and reply.success_count == 1
    assert {action for (_, _, _, action) in emulator.subscription_action_receipts} == {"unsubscribe"}


def test_client_sends_a_put_with_the_action_query_and_validates_its_arguments():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": "Success", "msg": "ok", "params": {}})

    client = IterableClient(
        API_KEY, "https://api.iterable.test", http=httpx.Client(transport=httpx.MockTransport(handler))
    )
    result = client.bulk_subscription_action("messageType", 7, "unsubscribe", ["a@example.com", "b@example.com"])
    ((request,),) = [seen]
    assert request.method == "PUT" and request.url.path == "/api/subscriptions/messageType/7"
    assert request.url.params["action"] == "unsubscribe"
    assert json.loads(request.content) == {"users": ["a@example.com", "b@example.com"]}
    assert (result.success_count, result.fail_count, result.failed) == (2, 0, {})
    for bad in (("messageType", 7, "delete"), ("message/Type", 7, "unsubscribe"), ("messageType", "7", "subscribe")):
        with pytest.raises(ValueError):
            client.bulk_subscription_action(*bad, ["a@example.com"])
    assert len(seen) == 1, "invalid arguments never reach the API"


def test_an_empty_202_reply_counts_every_email_as_accepted():
    handler = httpx.MockTransport(lambda request: httpx.Response(202))
    client = IterableClient(API_KEY, "https://api.iterable.test", http=httpx.Client(transport=handler))
    result = client.bulk_subscription_action("messageType", 7, "unsubscribe", ["a@example.com", "a@example.com"])
    assert (result.success_count, result.failed) == (1, {})


def test_put_is_retried_through_throttling_and_server_errors_like_post(warehouse):
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST, scripted_faults=["429", "500", None]) as emulator:
        report = sync(warehouse, emulator)
    assert (report.accepted, report.rejected, report.retries) == (EVENTS, 0, 2)
    assert set(emulator.unsubscribed) == {f"person{i:05d}@example.com" for i in range(EVENTS)}


def test_the_default_client_pacing_stays_within_the_emulators_default_five_per_second(tmp_path):
    warehouse = make_warehouse(tmp_path / "paced.duckdb", unsubscribe_rows(8))
    with IterableEmulator(api_key=API_KEY) as emulator:  # default limits: 5/s for /api/subscriptions/
        report = sync(warehouse, emulator, max_records=1, subscriptions_per_second=5)
    assert (report.requests, report.retries, report.accepted) == (8, 0, 8)
    assert emulator.status_counts[429] == 0


# -- opt-out semantics --------------------------------------------------------------------------------------


def test_a_person_is_opted_out_once_across_two_syncs_and_only_from_gitlab_marketing(warehouse):
    person = "person00007@example.com"
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST) as emulator:
        emulator.unsubscribed[person] = {OTHER_TYPE}  # opted out of another type earlier, e.g. in Iterable's UI
        first = sync(warehouse, emulator)
        requests_after_first = sum(emulator.requests_by_path.values())
        second = sync(warehouse, emulator)
        assert sum(emulator.requests_by_path.values()) == requests_after_first, "the second sync sends nothing"
    assert first.accepted == EVENTS
    assert (second.sent, second.requests, second.unchanged) == (0, 0, EVENTS)
    assert emulator.unsubscribed[person] == {OTHER_TYPE, GITLAB_MARKETING}, "the other opt-out is kept"
    assert all(ids == {GITLAB_MARKETING} for email, ids in emulator.unsubscribed.items() if email != person)
    assert emulator.subscriptions == {}, "nothing went through the overwriting updateSubscriptions endpoints"
    receipts = emulator.subscription_action_receipts
    assert receipts[(person, "messageType", GITLAB_MARKETING, "unsubscribe")] == 1
    assert set(sent_emails(emulator).values()) == {1}


def test_a_person_unsubscribed_twice_is_sent_once_in_one_request_and_both_events_end_synced(tmp_path):
    twice = "twice@example.com"
    frame = unsubscribe_rows(10, extra=[("evt-a", twice), ("evt-b", twice)])
    warehouse = make_warehouse(tmp_path / "twice.duckdb", frame)
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST) as emulator:
        report = sync(warehouse, emulator)
    (body,) = put_bodies(emulator)
    assert body["users"].count(twice) == 1 and len(body["users"]) == 11
    assert (report.sent, report.accepted) == (12, 12)
    synced = {key for (key,) in warehouse.query("select record_key from ops.sync_state")}
    assert {"evt-a", "evt-b"} <= synced and len(synced) == 12
    assert emulator.subscription_action_receipts[(twice, "messageType", GITLAB_MARKETING, "unsubscribe")] == 1


def test_a_later_event_for_an_already_unsubscribed_person_is_sent_once_more(warehouse):
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST) as emulator:
        sync(warehouse, emulator)
        warehouse.write_frame(
            "staging",
            "stg_marketo__unsubscribes",
            unsubscribe_rows(EVENTS, extra=[("evt-new", "person00003@example.com")]),
            replace=True,
        )
        emulator.reset()
        report = sync(warehouse, emulator)
    assert (report.sent, report.accepted) == (1, 1)
    assert put_bodies(emulator) == [{"users": ["person00003@example.com"]}]


def test_a_null_or_invalid_email_is_rejected_with_a_reason_and_the_rest_go_through(tmp_path):
    frame = unsubscribe_rows(20, extra=[("evt-null", None), ("evt-bad", "not-an-email")])
    warehouse = make_warehouse(tmp_path / "bad.duckdb", frame)
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST) as emulator:
        report = sync(warehouse, emulator)
    assert (report.considered, report.sent, report.accepted, report.rejected) == (22, 20, 20, 2)
    rejections = dict(warehouse.query("select record_key, reason from ops.sync_rejections where not resolved"))
    assert set(rejections) == {"evt-null", "evt-bad"}
    assert rejections["evt-null"] == "invalid record: not an e-mail address: None"
    assert rejections["evt-bad"] == "invalid record: not an e-mail address: 'not-an-email'"
    assert len(emulator.unsubscribed) == 20


def test_emails_iterable_rejects_map_back_to_every_event_of_that_person_and_are_retried(tmp_path):
    bad = "person00002@example.com"
    frame = unsubscribe_rows(5, extra=[("evt-again", bad)])
    warehouse = make_warehouse(tmp_path / "rejected.duckdb", frame)
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST, invalid_emails={bad}) as emulator:
        first = sync(warehouse, emulator)
        rejections = warehouse.query("select record_key, reason from ops.sync_rejections order by record_key")
        assert (first.accepted, first.rejected) == (4, 2)
        assert rejections == [("evt-00002", "invalidEmails"), ("evt-again", "invalidEmails")]
        emulator.invalid_emails.clear()
        emulator.reset()
        second = sync(warehouse, emulator)
    assert (second.sent, second.accepted) == (2, 2)
    assert put_bodies(emulator) == [{"users": [bad]}]
    assert warehouse.query("select count(*) from ops.sync_rejections where not resolved") == [(0,)]


def test_dry_run_writes_spec_valid_bodies_to_the_outbox_and_marks_nothing_synced(tmp_path):
    frame = unsubscribe_rows(EVENTS, extra=[("evt-dup", "person00001@example.com")])
    warehouse = make_warehouse(tmp_path / "dry.duckdb", frame)
    report = sync(warehouse, None)
    assert report.mode == "dry-run" and report.sent == EVENTS + 1 and report.requests == 3
    rows = warehouse.query(
        "select endpoint, record_count, body from ops.outbox where destination = 'iterable_unsubscribes'"
    )
    assert {endpoint for endpoint, _, _ in rows} == {PATH}
    assert sum(count for _, count, _ in rows) == EVENTS + 1
    bodies = [json.loads(body) for _, _, body in rows]
    for body in bodies:
        validate_request(BULK_SUBSCRIPTION_ACTION, body, method="put")
        assert len(body["users"]) == len(set(body["users"]))
    # "evt-dup" sorts after "evt-00119", into the last request: deduplication is per request, events are not merged
    assert sorted(email for body in bodies for email in body["users"]) == sorted(frame["email"])
    assert warehouse.query("select count(*) from ops.sync_state") == [(0,)]


# -- the resource and the asset ------------------------------------------------------------------------------


def materialize(tmp_path: Path, iterable: IterableResource) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [iterable_unsubscribe_sync],
        resources={
            "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "warehouse.duckdb")),
            "iterable": iterable,
        },
        raise_on_error=False,
    )


def sync_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (event,) = result.get_asset_materialization_events()
    return {key: value.value for key, value in event.materialization.metadata.items()}


def test_a_live_run_without_the_message_type_id_fails_clearly_and_sends_nothing(tmp_path, warehouse):
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST) as emulator:
        resource = IterableResource(api_key=API_KEY, base_url=emulator.base_url)
        with pytest.raises(dg.Failure, match=MESSAGE_TYPE_ID_ENV) as failure:
            resource.unsubscribe_message_type_id()
        assert "Marketing Message" in failure.value.description and "GitLab Marketing" in failure.value.description
        result = materialize(tmp_path, resource)
        assert not result.success
        assert sum(emulator.requests_by_path.values()) == 0
    (step_failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert MESSAGE_TYPE_ID_ENV in str(step_failure.event_specific_data.error)


def test_a_live_run_opts_out_of_the_configured_message_type(tmp_path, warehouse):
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST) as emulator:
        resource = IterableResource(
            api_key=API_KEY, base_url=emulator.base_url, marketing_message_type_id=GITLAB_MARKETING
        )
        result = materialize(tmp_path, resource)
    assert result.success
    metadata = sync_metadata(result)
    assert (metadata["mode"], metadata["sent"], metadata["accepted"]) == ("live", EVENTS, EVENTS)
    assert (metadata["endpoint"], metadata["message_type_id"], metadata["message_type_id_configured"]) == (
        PATH,
        GITLAB_MARKETING,
        True,
    )
    assert all(ids == {GITLAB_MARKETING} for ids in emulator.unsubscribed.values())
    assert API_KEY not in json.dumps(metadata, default=str)


def test_the_configured_id_is_used_and_a_negative_one_fails():
    assert IterableResource(marketing_message_type_id=34).configured_message_type_id() == 34
    assert IterableResource().configured_message_type_id() is None
    with pytest.raises(dg.Failure, match=f"marketing_message_type_id \\({MESSAGE_TYPE_ID_ENV}\\) must be >= 0"):
        IterableResource(marketing_message_type_id=-1).configured_message_type_id()


def test_dry_run_without_an_id_uses_a_placeholder_and_says_so(tmp_path, warehouse):
    result = materialize(tmp_path, IterableResource())
    assert result.success
    metadata = sync_metadata(result)
    assert (metadata["mode"], metadata["sent"]) == ("dry-run", EVENTS)
    assert metadata["endpoint"] == "/api/subscriptions/messageType/0" and not metadata["message_type_id_configured"]
    assert MESSAGE_TYPE_ID_ENV in metadata["note"]
    assert warehouse.query("select distinct endpoint from ops.outbox") == [("/api/subscriptions/messageType/0",)]
