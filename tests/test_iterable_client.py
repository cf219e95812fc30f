"""The Iterable client against a real loopback emulator (and httpx.MockTransport where a scripted reply is simpler)."""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from devtools.iterable_emulator import DEFAULT_PREFIX_RATE_LIMITS, DEFAULT_RATE_LIMITS, IterableEmulator
from marketing_pipelines.clients import (
    ApiError,
    IterableClient,
    OversizedRecordError,
    RateLimiter,
    RetryPolicy,
    batches_by_size,
    dumps_compact,
    envelope_size,
    parse_retry_after,
    redact,
)
from marketing_pipelines.clients.iterable import (
    BULK_SUBSCRIPTION_ACTION,
    BULK_UPDATE_USERS,
    TRACK_BULK,
    subscription_action_path,
)
from marketing_pipelines.sync.iterable import TRIAL_EVENTS, USERS
from tests import spec
from tests.support.http import fast_retry

API_KEY = "itbl-test-key-5f2c9a1e7d"
FAST = {path: 10_000 for path in {**DEFAULT_RATE_LIMITS, **DEFAULT_PREFIX_RATE_LIMITS}}


def fast_client(base_url: str, **kwargs) -> IterableClient:
    """A client whose pacing is out of the way, with near-instant retries."""
    options = {
        "bulk_update_per_second": 1000,
        "track_bulk_per_second": 1000,
        "subscriptions_per_second": 1000,
        "retry": fast_retry(max_retries=10),
        **kwargs,
    }
    return IterableClient(API_KEY, base_url, **options)


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs) -> IterableClient:
    options = {"retry": RetryPolicy(max_retries=3, base_delay=0.0, jitter=False), "sleep": lambda s: None, **kwargs}
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return IterableClient(API_KEY, "https://api.iterable.test", http=http, **options)


def scripted(*responses: httpx.Response) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    """A MockTransport handler replaying `responses` in order, and the list of requests it saw."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return handler, seen


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < window) for i, start in enumerate(times)), default=0)


def users(n: int, prefix: str = "user") -> list[dict]:
    return [{"email": f"{prefix}{i}@example.com", "dataFields": {"score": i, "plan": "pro"}} for i in range(n)]


def events(n: int, prefix: str = "evt") -> list[dict]:
    return [
        {
            "email": f"user{i % 7}@example.com",
            "eventName": "trialStarted",
            "id": f"{prefix}-{i}",
            "createdAt": 1_700_000_000 + i,
            "dataFields": {"seats": i},
        }
        for i in range(n)
    ]


@pytest.fixture
def emulator() -> Iterator[IterableEmulator]:
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST) as emu:
        yield emu


# -- the spec ------------------------------------------------------------------------------------------------


def test_every_request_body_the_client_sends_matches_the_spec_schema_of_its_endpoint(emulator: IterableEmulator):
    client = fast_client(emulator.base_url)
    client.bulk_update_users(
        [
            {"email": "a@example.com", "dataFields": {"plan": "pro", "nested": {"x": 1}}, "mergeNestedObjects": True},
            {"userId": "u-2", "dataFields": {"plan": "free"}, "preferUserId": True},
        ]
    )
    client.track_bulk(events(3))
    client.bulk_subscription_action("messageType", 42, "unsubscribe", ["a@example.com"])

    sent = {path for path, _ in emulator.received_bodies}
    assert sent == {BULK_UPDATE_USERS, TRACK_BULK, subscription_action_path("messageType", 42)}
    assert set(client.limiters) == {BULK_UPDATE_USERS, TRACK_BULK, BULK_SUBSCRIPTION_ACTION}, "every endpoint it has"
    for path, body in emulator.received_bodies:
        if path.startswith("/api/subscriptions/"):
            spec.validate_request(BULK_SUBSCRIPTION_ACTION, body, method="put")
        else:
            spec.validate_request(path, body)


def test_the_strict_spec_check_rejects_a_misspelt_field_the_plain_spec_would_accept():
    body = {"updateSubscriptionRequests": [{"email": "a@example.com"}]}
    assert spec.request_errors("/api/users/bulkUpdateSubscriptions", body, strict=True)
    assert spec.request_errors("/api/users/bulkUpdate", {"users": [{"email": "a@x.io", "datafields": {}}]})
    assert not spec.request_errors("/api/users/bulkUpdate", {"users": [{"email": "a@x.io", "dataFields": {"k": 1}}]})


def test_the_emulator_answers_with_the_response_shapes_the_spec_documents(emulator: IterableEmulator):
    client = fast_client(emulator.base_url)
    responses = {
        ("post", BULK_UPDATE_USERS): client.bulk_update_users(users(2)).raw,
        ("post", TRACK_BULK): client.track_bulk(events(2)).raw,
        ("put", BULK_SUBSCRIPTION_ACTION): client.bulk_subscription_action(
            "messageType", 1, "unsubscribe", ["a@example.com"]
        ).raw,
    }
    for (method, path), body in responses.items():
        spec.validate_response(path, body, method=method)


# -- retries -------------------------------------------------------------------------------------------------


def test_throttling_and_server_errors_are_retried_until_every_record_is_accepted_exactly_once():
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST, fault_rates={"429": 0.2, "500": 0.05}, seed=3) as emu:
        client = fast_client(emu.base_url)
        sent = events(200)
        results = [client.track_bulk(sent[i : i + 5]) for i in range(0, len(sent), 5)]
        user_results = [client.bulk_update_users(users(5, prefix=f"b{i}-")) for i in range(10)]

    assert emu.status_counts[429] > 0 and emu.status_counts[500] > 0
    assert client.stats.retries == emu.status_counts[429] + emu.status_counts[500] > 0
    assert client.stats.requests == sum(emu.status_counts.values())
    assert sum(r.success_count for r in results) == 200 and not any(r.failed for r in results)
    assert set(emu.events) == {e["id"] for e in sent}
    assert max(emu.event_receipts.values()) == 1, "an event id was received twice"
    assert sum(r.success_count for r in user_results) == 50 and len(emu.users) == 50


def test_a_slow_response_times_out_is_retried_and_the_event_id_keeps_it_one_event():
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST, scripted_faults=["slow"], slow_seconds=0.6) as emu:
        client = fast_client(emu.base_url, timeout=httpx.Timeout(0.2, connect=1.0))
        result = client.track_bulk(events(1))
        deadline = time.monotonic() + 3
        while emu.event_receipts["evt-0"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)

    assert result.success_count == 1
    assert client.stats.retries == 1 and client.stats.statuses[None] == 1
    # The timed-out request was still applied server-side, so the id arrived twice but is stored once.
    assert emu.event_receipts["evt-0"] == 2
    assert list(emu.events) == ["evt-0"]


def test_a_plain_text_429_is_retried_without_trying_to_parse_it():
    handler, seen = scripted(
        httpx.Response(429, text="Too Many Requests"),
        httpx.Response(429, content=b"\xff\xfe not json <html>"),
        httpx.Response(200, json={"successCount": 1, "failCount": 0}),
    )
    result = mock_client(handler).bulk_update_users(users(1))
    assert result.success_count == 1 and len(seen) == 3


def test_retry_after_is_honoured_in_seconds_and_as_an_http_date():
    slept: list[float] = []
    when = email.utils.formatdate(time.time() + 5, usegmt=True)
    handler, seen = scripted(
        httpx.Response(429, text="slow down", headers={"Retry-After": "3"}),
        httpx.Response(503, text="busy", headers={"Retry-After": when}),
        httpx.Response(200, json={"successCount": 1, "failCount": 0}),
    )
    client = mock_client(handler, sleep=slept.append)
    client.track_bulk(events(1))
    assert len(seen) == 3
    assert slept[0] == 3
    assert 3.5 <= slept[1] <= 5.5


def test_the_emulator_sends_retry_after_and_the_client_waits_that_long():
    slept: list[float] = []
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST, scripted_faults=["429"], retry_after="2") as emu:
        client = fast_client(emu.base_url, sleep=slept.append)
        client.bulk_update_users(users(1))
    assert 2 in slept and emu.status_counts[429] == 1 and client.stats.retries == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_not_retried_and_raise_api_error(status: int):
    handler, seen = scripted(httpx.Response(status, json={"code": "BadParams", "msg": "nope"}))
    with pytest.raises(ApiError) as info:
        mock_client(handler).bulk_update_users(users(1))
    assert len(seen) == 1
    assert info.value.status_code == status and info.value.endpoint == "/api/users/bulkUpdate"
    assert "BadParams" in info.value.body_excerpt


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (httpx.Response(400, json={"code": "BadParams", "msg": "users[3] invalid", "params": None}),
         "BadParams: users[3] invalid"),
        (httpx.Response(400, json={"result": False, "errorCode": "GS_1004", "errorDesc": "Name is required"}),
         "GS_1004: Name is required"),
        (httpx.Response(413, text="  Request Entity Too Large\n"), "Request Entity Too Large"),
        (httpx.Response(422, json={"msg": f"bad key {API_KEY}"}), "bad key [REDACTED]"),
    ],
)  # fmt: skip
def test_an_api_error_carries_the_apis_own_message_scrubbed(reply: httpx.Response, detail: str):
    handler, _ = scripted(reply)
    with pytest.raises(ApiError) as info:
        mock_client(handler).bulk_update_users(users(1))
    assert info.value.detail == detail and info.value.status_code == reply.status_code


def test_a_bad_request_and_a_wrong_api_key_each_cost_exactly_one_request_at_the_emulator(
    emulator: IterableEmulator,
):
    with pytest.raises(ApiError) as bad_request:
        fast_client(emulator.base_url).track_bulk([{"email": "a@example.com", "id": "x"}])  # no eventName
    assert bad_request.value.status_code == 400

    wrong_key = IterableClient("not-the-key", emulator.base_url, retry=fast_retry(max_retries=10))
    with pytest.raises(ApiError) as unauthorized:
        wrong_key.bulk_update_users(users(1))
    assert unauthorized.value.status_code == 401
    assert wrong_key.stats.requests == 1 and wrong_key.stats.retries == 0
    assert emulator.requests_by_path == {"/api/events/trackBulk": 1, "/api/users/bulkUpdate": 1}


def test_exhausted_retries_raise_api_error_with_the_last_status():
    handler, seen = scripted(*[httpx.Response(500, text="boom")] * 4)
    with pytest.raises(ApiError) as info:
        mock_client(handler).bulk_update_users(users(1))
    assert len(seen) == 4 and info.value.status_code == 500 and info.value.attempts == 4


# -- secrets -------------------------------------------------------------------------------------------------


def test_the_api_key_never_appears_in_errors_or_logs(caplog: pytest.LogCaptureFixture, emulator: IterableEmulator):
    caplog.set_level(logging.DEBUG)
    errors: list[ApiError] = []

    handler, _ = scripted(
        httpx.Response(500, text=f"internal error for key {API_KEY}"),
        httpx.Response(400, json={"msg": f"Invalid params; Api-Key={API_KEY}"}),
    )
    with pytest.raises(ApiError) as echoed:
        mock_client(handler).bulk_update_users(users(1))
    errors.append(echoed.value)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect with {request.headers['Api-Key']}", request=request)

    with pytest.raises(ApiError) as unreachable:
        mock_client(refuse).track_bulk(events(1))
    assert unreachable.value.status_code is None and unreachable.value.attempts == 4
    errors.append(unreachable.value)

    with pytest.raises(ApiError) as real_401:
        IterableClient(API_KEY + "-wrong", emulator.base_url).bulk_update_users(users(1))
    errors.append(real_401.value)

    for error in errors:
        for text in (str(error), repr(error), error.body_excerpt, *map(str, error.args)):
            assert API_KEY not in text
        assert error.__cause__ is None
    assert "[REDACTED]" in str(echoed.value)
    assert caplog.records, "expected retry warnings to be logged"
    assert API_KEY not in caplog.text
    assert all(API_KEY not in r.getMessage() for r in caplog.records)


def test_redact_replaces_every_secret_and_ignores_empty_ones():
    assert redact("a KEY b KEY", ["KEY", "", None]) == "a [REDACTED] b [REDACTED]"
    assert redact("abcdef", ["abc", "abcdef"]) == "[REDACTED]"


# -- partial failures ----------------------------------------------------------------------------------------


def test_invalid_emails_come_back_as_failed_with_their_reason_while_the_rest_succeed():
    bad = {"user1@example.com", "user3@example.com"}
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST, invalid_emails=bad) as emu:
        result = fast_client(emu.base_url).bulk_update_users(users(5))
    assert result.success_count == 3 and result.fail_count == 2
    assert result.failed == dict.fromkeys(bad, "invalidEmails")
    assert set(emu.users) == {f"user{i}@example.com" for i in (0, 2, 4)}


def test_track_bulk_failures_name_the_user_or_event_name_and_map_back_to_the_events_sent():
    with IterableEmulator(
        api_key=API_KEY, rate_limits=FAST, invalid_emails={"user1@example.com"}, disallowed_event_names={"blocked"}
    ) as emu:
        blocked = {"email": "user9@example.com", "eventName": "blocked", "id": "evt-blocked", "createdAt": 1}
        sent = [*events(8), blocked]
        result = fast_client(emu.base_url).track_bulk(sent)
    assert result.failed == {"user1@example.com": "invalidEmails", "blocked": "disallowedEventNames"}
    assert TRIAL_EVENTS.rejections(sent, result.failed) == {1: "invalidEmails", 8: "disallowedEventNames"}
    assert result.success_count == 7 and set(emu.events) == {f"evt-{i}" for i in range(8)} - {"evt-1"}


def test_every_failed_updates_list_is_parsed_including_deprecated_and_subscription_action_lists():
    response = {
        "successCount": 1,
        "failCount": 4,
        "failedUpdates": {
            "conflictEmails": ["c@x.io"],
            "notFoundUserIds": ["u1"],
            "forgottenEmails": ["f@x.io"],
            "someFutureList": ["n@x.io"],
        },
        "invalidEmails": ["old@x.io"],
    }
    handler, _ = scripted(
        httpx.Response(200, json=response),
        httpx.Response(
            200,
            json={
                "code": "Success",
                "msg": "",
                "params": {
                    "invalidEmails": ["bad@x.io"],
                    "invalidUserIds": [],
                    "validEmailFailures": ["later@x.io"],
                    "validUserIdFailures": [],
                },
            },
        ),
    )
    client = mock_client(handler)
    assert client.bulk_update_users([{"email": "c@x.io"}]).failed == {
        "c@x.io": "conflictEmails",
        "u1": "notFoundUserIds",
        "f@x.io": "forgottenEmails",
        "n@x.io": "someFutureList",
        "old@x.io": "invalidEmails",
    }
    opt_out = client.bulk_subscription_action("messageType", 9, "unsubscribe", ["bad@x.io", "later@x.io", "ok@x.io"])
    assert opt_out.failed == {"bad@x.io": "invalidEmails", "later@x.io": "validEmailFailures"}
    assert (opt_out.success_count, opt_out.fail_count) == (1, 2)


# -- pacing --------------------------------------------------------------------------------------------------


def test_thirty_bulk_updates_never_exceed_five_in_any_one_second_window():
    starts: list[float] = []
    lock = threading.Lock()

    def record(request: httpx.Request) -> None:
        with lock:
            starts.append(time.monotonic())

    with IterableEmulator(api_key=API_KEY) as emu:  # the documented limits: bulkUpdate 5/s
        http = httpx.Client(event_hooks={"request": [record]}, timeout=httpx.Timeout(10, connect=5))
        client = IterableClient(API_KEY, emu.base_url, http=http)

        def worker(n: int) -> None:
            for i in range(10):
                client.bulk_update_users(users(1, prefix=f"w{n}-{i}-"))

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    accepted = emu.accepted_request_times_by_path["/api/users/bulkUpdate"]
    assert len(accepted) == 30 and len(starts) == 30 + emu.status_counts[429]
    assert max_in_any_window(accepted) <= 5
    assert max_in_any_window(starts) <= 5
    # A request that took over 20 ms to arrive (a loaded machine: the emulator shares this process) may draw a 429;
    # each doubles the allowance, six of them make every request count until its answer (plus one per other thread)
    assert emu.status_counts[429] == client.stats.retries <= 6 + 2
    assert len(emu.users) == 30


def test_the_rate_limiter_never_starts_more_than_n_in_any_window_on_a_fake_clock():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(5, clock=lambda: now[0], sleep=sleep)
    starts = []
    for i in range(23):
        if i % 4 == 0:
            now[0] += 0.13
        starts.append(limiter.acquire())
    assert max_in_any_window(starts) == 5
    assert starts[-1] - starts[0] < 4.5

    slow = RateLimiter(0.5, clock=lambda: now[0], sleep=sleep)
    first, second = slow.acquire(), slow.acquire()
    assert second - first >= 2.0


def test_the_answer_anchored_limiter_keeps_any_window_of_arrivals_at_n_with_two_in_flight_on_a_fake_clock():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    rng = random.Random(7)
    limiter = RateLimiter(5, clock=lambda: now[0], sleep=sleep, until_answered=True, arrival_allowance=None)
    slots, in_flight, arrivals = [], [], []
    for _ in range(60):
        if len(in_flight) == 2:  # the older answer comes in before a third request may go
            now[0] += rng.uniform(0.0, 0.4)
            limiter.answered(in_flight.pop(0))
        now[0] += rng.uniform(0.0, 0.05)  # the next batch is built
        asked = now[0]
        slot = limiter.acquire_slot()
        # every request but the 4 latest was answered more than a window before this one started ...
        assert all(s.answered is not None and slot.start - s.answered > 1.0 for s in slots[:-4])
        # ... and it waited no longer than that
        latest_due = max((s.answered + 1.0 for s in slots[:-4] if s.answered is not None), default=asked)
        assert slot.start <= max(asked, latest_due) + 0.001
        slots.append(slot)
        in_flight.append(slot)
    for slot in in_flight:
        now[0] += 0.1
        limiter.answered(slot)
    for slot in slots:  # wherever between its start and its answer a server stamped each arrival
        arrivals.append(slot.start + rng.random() * (slot.answered - slot.start))
    assert max_in_any_window(arrivals) <= 5
    assert max_in_any_window([slot.answered for slot in slots]) <= 5


def _paced_starts(limiter: RateLimiter, now: list[float], rng: random.Random, requests: int) -> tuple[list, list]:
    """Starts and (server) arrivals of `requests` sent two in flight through `limiter` on the fake clock `now`:
    each arrives within 20 ms of its start and is answered 50-350 ms after it."""
    slots, in_flight, arrivals = [], [], []
    for _ in range(requests):
        if len(in_flight) == 2:  # the older answer comes in before a third request may go
            slot, answer_at = in_flight.pop(0)
            now[0] = max(now[0], answer_at)
            limiter.answered(slot)
        slot = limiter.acquire_slot()
        arrivals.append(slot.start + rng.uniform(0.0, 0.02))
        slots.append(slot)
        in_flight.append((slot, slot.start + rng.uniform(0.05, 0.35)))
    return [slot.start for slot in slots], arrivals


def test_the_arrival_allowance_paces_at_the_limit_whatever_the_latency_and_widens_on_a_429():
    """Requests that arrive within the allowance of their start: at most 5 arrivals in any second however slow the
    answers, near the limit where counting until the answers loses the latency; a 429 doubles the allowance, and
    past a window requests count until answered."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(5, clock=lambda: now[0], sleep=sleep, until_answered=True)
    assert limiter.arrival_allowance == RateLimiter.ARRIVAL_ALLOWANCE == 0.02
    starts, arrivals = _paced_starts(limiter, now, random.Random(11), 200)
    assert max_in_any_window(arrivals) <= 5
    assert (starts[-1] - starts[0]) / (len(starts) - 5) <= 1.05 / 5
    anchored = RateLimiter(5, clock=lambda: now[0], sleep=sleep, until_answered=True, arrival_allowance=None)
    slower, _ = _paced_starts(anchored, now, random.Random(11), 200)
    assert (slower[-1] - slower[0]) / (len(slower) - 5) > 1.15 / 5

    limiter.throttled()
    assert limiter.arrival_allowance == 0.04 and limiter.throttles == 1
    for _ in range(5):
        limiter.throttled()
    assert limiter.arrival_allowance is None  # 1.28 s is past the window: each request counts until its answer
    with pytest.raises(ValueError, match="arrival_allowance"):
        RateLimiter(5, until_answered=True, arrival_allowance=0)


def test_a_widened_allowance_narrows_again_after_requests_without_a_429():
    """One late arrival must not slow the rest of a long push: every RECOVER_AFTER requests started without a 429
    halve the allowance, back to the given one and no further; a 429 meanwhile starts the count again."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(5, clock=lambda: now[0], sleep=sleep, until_answered=True)
    rng = random.Random(5)
    for _ in range(3):
        limiter.throttled()
    assert limiter.arrival_allowance == 0.16
    _paced_starts(limiter, now, rng, RateLimiter.RECOVER_AFTER - 1)
    assert limiter.arrival_allowance == 0.16, "not before RECOVER_AFTER requests"
    _paced_starts(limiter, now, rng, 1)
    assert limiter.arrival_allowance == 0.08
    _paced_starts(limiter, now, rng, RateLimiter.RECOVER_AFTER // 2)
    limiter.throttled()  # a 429 halfway: doubled, and the count starts over
    assert limiter.arrival_allowance == 0.16
    _paced_starts(limiter, now, rng, RateLimiter.RECOVER_AFTER * 5)
    assert limiter.arrival_allowance == RateLimiter.ARRIVAL_ALLOWANCE, "never below the given allowance"
    assert limiter.throttles == 4
    for _ in range(6):
        limiter.throttled()
    assert limiter.arrival_allowance is None
    _paced_starts(limiter, now, rng, RateLimiter.RECOVER_AFTER)
    assert limiter.arrival_allowance == 0.64, "from counting until the answer, back to the largest allowance"


def test_the_retry_policy_retries_only_transient_failures_with_capped_jittered_backoff():
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, rng=random.Random(1))
    assert all(policy.is_retryable_status(s) for s in (408, 409, 429, 500, 502, 503, 504))
    assert not any(policy.is_retryable_status(s) for s in (400, 401, 403, 404, 413, 422))
    assert policy.is_retryable_exception(httpx.ReadTimeout("t")) and policy.is_retryable_exception(
        httpx.ConnectError("c")
    )
    assert not policy.is_retryable_exception(httpx.UnsupportedProtocol("u"))
    delays = [policy.delay(attempt) for attempt in range(12) for _ in range(20)]
    assert all(0 <= d <= 4.0 for d in delays) and len(set(delays)) > 100
    assert RetryPolicy(jitter=False, base_delay=0.5, max_delay=4.0).delay(10) == 4.0
    assert policy.delay(0, retry_after=12) == 12


def test_retry_after_parses_seconds_and_http_dates_and_ignores_garbage():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=lambda: 1445412490.0) == 0.0
    for junk in (None, "", "soon", "-3"):
        assert parse_retry_after(junk) is None


# -- batching ------------------------------------------------------------------------------------------------


def test_batches_by_size_keeps_every_body_under_the_byte_and_record_limits_and_reports_oversized_records():
    rng = random.Random(5)
    records = [{"email": f"u{i}@example.com", "dataFields": {"bio": "é" * rng.randint(0, 200)}} for i in range(300)]
    records.insert(17, {"email": "huge@example.com", "dataFields": {"bio": "x" * 5000}})
    oversized: list[tuple[dict, int]] = []
    envelope = envelope_size({}, "users")

    batches = list(
        batches_by_size(
            records,
            max_records=10,
            max_bytes=3000,
            envelope_bytes=envelope,
            on_oversized=lambda r, n: oversized.append((r, n)),
        )
    )
    for batch in batches:
        assert 1 <= len(batch) <= 10
        assert len(dumps_compact({"users": batch})) <= 3000
    assert [r["email"] for b in batches for r in b] == [r["email"] for r in records if r["email"] != "huge@example.com"]
    assert [(r["email"], n > 3000) for r, n in oversized] == [("huge@example.com", True)]
    assert any(len(b) == 10 for b in batches) and any(len(b) < 10 for b in batches[:-1]), "both limits should bind"

    with pytest.raises(OversizedRecordError):
        list(batches_by_size(records, max_records=10, max_bytes=3000, envelope_bytes=envelope))


def test_batched_bulk_updates_fit_the_emulator_body_limit_which_rejects_bigger_bodies():
    with IterableEmulator(api_key=API_KEY, rate_limits=FAST, max_body_bytes=4000) as emu:
        client = fast_client(emu.base_url)
        batches = batches_by_size(
            users(200), max_records=USERS.max_records, max_bytes=4000, envelope_bytes=USERS.envelope_bytes()
        )
        results = [client.bulk_update_users(batch) for batch in batches]
        assert sum(result.success_count for result in results) == 200 and len(emu.users) == 200
        assert emu.status_counts[413] == 0 and emu.requests_by_path["/api/users/bulkUpdate"] > 1
        for _path, body in emu.received_bodies:
            assert len(json.dumps(body, separators=(",", ":")).encode()) <= 4000

        with pytest.raises(ApiError) as too_big:
            client.bulk_update_users(users(200))
        assert too_big.value.status_code == 413 and too_big.value.attempts == 1
