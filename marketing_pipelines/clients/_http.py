"""Shared HTTP plumbing for the reverse-ETL API clients: pacing, retries, safe errors and size-aware batching.

No Dagster imports: these are plain classes that resources wrap.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import Any, Self, TypeVar

import httpx
import orjson

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
REDACTED = "[REDACTED]"
T = TypeVar("T")
EXCERPT_CHARS = 300


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in `text` (longest first, so overlaps are covered)."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _exact_number(value: Any) -> orjson.Fragment:
    """A Decimal as a JSON number with exactly its digits (never through a float); other types are refused."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps_compact(obj: Any) -> bytes:
    """The exact bytes a client sends for `obj`: compact separators, UTF-8, non-ASCII kept as is, keys as text. A
    Decimal (money) is a JSON number with exactly its digits: `Decimal("972765.41")` is sent as `972765.41`."""
    try:
        return orjson.dumps(obj, default=_exact_number, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as error:  # the cause is the default's own error (e.g. a NaN Decimal)
        if isinstance(error.__cause__, ValueError | TypeError):
            raise error.__cause__ from None
        raise TypeError(str(error)) from None


class ApiError(Exception):
    """A request that failed for good (non-retryable status, or retries exhausted). Never carries a secret."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        endpoint: str,
        body_excerpt: str = "",
        attempts: int = 1,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.endpoint = endpoint
        self.body_excerpt = body_excerpt
        self.attempts = attempts
        self.detail = detail or body_excerpt
        """The API's own error message (e.g. Iterable's `code: msg`), secrets scrubbed, at most 300 characters."""

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"ApiError(status_code={self.status_code!r}, endpoint={self.endpoint!r}, message={self.message!r})"


class OversizedRecordError(ValueError):
    """A single record is too large to fit in any request body (raised when no `on_oversized` callback is given)."""


class Slot:
    """One request start recorded by a `RateLimiter`; `answered` is set (client clock) once its answer is in."""

    __slots__ = ("answered", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.answered: float | None = None


class RateLimiter:
    """Sliding-window limiter: never more than `max_per_second` requests within any 1-second window.

    A fractional rate below 1 becomes one request per `1 / rate` seconds; above 1 it is rounded down.
    `window_seconds` widens the window for per-minute limits: `RateLimiter(100, window_seconds=60)` allows
    100 starts in any 60 s (which also keeps a server's fixed 60 s windows at 100).
    `safety_margin` widens the window to absorb clock/latency skew between client and server. Thread-safe.

    By default a request counts from its start for one window: at most N starts in any window on the client's
    clock. A server stamps a request when it arrives, some time after that start, so a request that took longer
    to arrive than a later one can put N+1 in one of the server's windows unless `safety_margin` covers the
    difference.

    `until_answered=True` counts a request from its start until one window after the moment it had surely
    arrived: its answer, or `arrival_allowance` seconds after its start if that comes first (None: always the
    answer). A new request then starts more than a window after the arrival of every request but the N-1
    latest, so no server window that counts arrivals sees more than N, with any number of requests in flight,
    as long as a request unanswered after `arrival_allowance` had arrived by then. Where that fails, the server
    answers 429: `throttled` doubles the allowance (to the answer itself at most), so a client under a slow
    network or server falls back to counting each request until its answer. Every `RECOVER_AFTER` requests
    started without a 429 halve it again, down to the one it was given: one late arrival (a pause on either side)
    does not slow the rest of a long push. The allowance costs at most its length per window (1 s + 20 ms: 98% of
    the limit); counting until the answer would cost the whole latency.
    """

    #: How often a request waiting for the answer of one in flight looks again (`until_answered`, no allowance).
    POLL_SECONDS = 0.002
    #: Default `arrival_allowance` of `until_answered` limiters (seconds).
    ARRIVAL_ALLOWANCE = 0.02
    #: Requests started without a 429 after which a doubled allowance is halved again.
    RECOVER_AFTER = 100

    def __init__(
        self,
        max_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        *,
        safety_margin: float = 0.0,
        window_seconds: float = 1.0,
        until_answered: bool = False,
        arrival_allowance: float | None = ARRIVAL_ALLOWANCE,
    ) -> None:
        if max_per_second <= 0 or window_seconds <= 0:
            raise ValueError("max_per_second and window_seconds must be positive")
        if arrival_allowance is not None and arrival_allowance <= 0:
            raise ValueError("arrival_allowance must be positive (or None: until the answer)")
        self.max_per_second = max_per_second / window_seconds
        if max_per_second >= 1:
            self.capacity, window = int(max_per_second), window_seconds
        else:
            self.capacity, window = 1, window_seconds / max_per_second
        self.window = window + safety_margin
        self.until_answered = until_answered
        self._base_allowance = arrival_allowance if until_answered else None
        self._doublings = 0
        self._since_throttle = 0
        self.throttles = 0
        self._clock = clock
        self._sleep = sleep
        self._slots: deque[Slot] = deque()
        self._lock = threading.Lock()

    @property
    def arrival_allowance(self) -> float | None:
        """The allowance now: the given one doubled once per unrecovered 429 (None: past a window, the answer)."""
        if self._base_allowance is None:
            return None
        allowance = self._base_allowance * 2**self._doublings
        return None if allowance > self.window else allowance

    def _counts_until(self, slot: Slot) -> float:
        """The time after which `slot` no longer counts (infinite while an answer with no allowance is awaited)."""
        if not self.until_answered:
            return slot.start + self.window
        arrived = float("inf") if slot.answered is None else slot.answered
        if self.arrival_allowance is not None:
            arrived = min(arrived, slot.start + self.arrival_allowance)
        return arrived + self.window

    def acquire(self) -> float:
        """Block until a request may start; record and return its start time (with `until_answered`, use
        `acquire_slot` and mark the answer: a start never answered counts for ever)."""
        return self.acquire_slot().start

    def acquire_slot(self) -> Slot:
        """Block until a request may start; record and return its slot (`answered` marks its answer)."""
        with self._lock:
            while True:
                now = self._clock()
                ends = sorted(self._counts_until(slot) for slot in self._slots)
                while self._slots and self._counts_until(self._slots[0]) < now:
                    self._slots.popleft()  # the oldest no longer counts (an answered slot may wait behind it)
                counting = [end for end in ends if end >= now]
                if len(counting) < self.capacity:
                    break
                wait = counting[len(counting) - self.capacity] - now
                # Sleeping under the lock keeps waiters in order and the window exact.
                self._sleep(self.POLL_SECONDS if wait == float("inf") else wait + 1e-4)
            slot = Slot(now)
            self._slots.append(slot)
            self._since_throttle += 1
            if self._doublings and self._since_throttle >= self.RECOVER_AFTER:
                self._doublings -= 1
                self._since_throttle = 0
            return slot

    def answered(self, slot: Slot) -> None:
        """Mark the answer (or failure) of the request of `slot` as in, now (no lock: one attribute is set)."""
        slot.answered = self._clock()

    def throttled(self) -> None:
        """The server refused a request for its rate (429): a request took longer to arrive than the allowance,
        which doubles (past one window, requests count until their answer)."""
        with self._lock:
            self.throttles += 1
            self._since_throttle = 0
            if self.arrival_allowance is not None:
                self._doublings += 1


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, and how long to wait: capped exponential backoff with full jitter.

    Retries 408/409/429/5xx and connection errors/timeouts, never other 4xx. A `Retry-After` header wins over
    the computed backoff (capped at `max_retry_after`).
    """

    max_retries: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: bool = True
    retry_statuses: frozenset[int] = frozenset({408, 409, 429})
    max_retry_after: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def is_retryable_status(self, status_code: int) -> bool:
        return status_code in self.retry_statuses or 500 <= status_code <= 599

    def is_retryable_exception(self, exc: BaseException) -> bool:
        if isinstance(exc, httpx.UnsupportedProtocol):  # a misconfigured URL never heals
            return False
        return isinstance(exc, httpx.TimeoutException | httpx.TransportError)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `attempt + 1` (attempt counts from 0)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        capped = min(self.max_delay, self.base_delay * (2**attempt))
        return self.rng.uniform(0, capped) if self.jitter else capped


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` as seconds: either delta-seconds or an HTTP date. None when absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now())
    return seconds if seconds >= 0 else None


@dataclass
class ClientStats:
    """Counters for one client: HTTP attempts, retries, and responses by status (`None` for transport errors)."""

    requests: int = 0
    retries: int = 0
    statuses: dict[int | None, int] = field(default_factory=dict)

    def _count(self, status: int | None) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


class JsonApiClient:
    """A JSON-over-HTTPS client with pacing, retries and secret scrubbing; subclasses add typed endpoints."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str] = (),
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        log: logging.Logger | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        self._secrets = tuple(s for s in secrets if s)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=timeout)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._log = log or logger
        self.stats = ClientStats()
        self._stats_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers ---------------------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def _excerpt(self, text: str) -> str:
        return self.redact(text)[:EXCERPT_CHARS]

    def _bump(self, *, status: int | None = None, attempt: bool = False, retry: bool = False) -> None:
        with self._stats_lock:
            if attempt:
                self.stats.requests += 1
                self.stats._count(status)
            if retry:
                self.stats.retries += 1

    # -- requests --------------------------------------------------------------------------------------------
    def post_json(self, endpoint: str, body: Any, *, limiter: RateLimiter | None = None) -> dict[str, Any]:
        """POST `body` as compact JSON (bytes: already encoded, sent as they are), retrying per the policy; return
        the parsed JSON object.

        Raises ApiError (secrets scrubbed) on a non-retryable status, exhausted retries or an unparseable reply.
        """
        return self.request_json("POST", endpoint, body, limiter=limiter)

    def request_json(
        self,
        method: str,
        endpoint: str,
        body: Any,
        *,
        params: Mapping[str, str] | None = None,
        limiter: RateLimiter | None = None,
    ) -> dict[str, Any]:
        """Send `body` as compact JSON with `method` (POST, PUT, ...) and optional query `params`, retrying per
        the policy; return the parsed JSON object (`{}` for an empty reply, e.g. a 202). A `bytes` body is JSON
        already encoded (`dumps_compact`, or a body joined from encoded records): sent as it is, never re-encoded.

        Raises ApiError (secrets scrubbed) on a non-retryable status, exhausted retries or an unparseable reply.
        """
        method = method.upper()
        content = body if isinstance(body, bytes) else dumps_compact(body)
        url = f"{self.base_url}{endpoint}"
        query = dict(params) if params else None
        attempt = 0
        while True:
            try:
                response = self._send(method, url, content, query, limiter)
            except httpx.HTTPError as exc:
                self._bump(status=None, attempt=True)
                detail = self._excerpt(f"{type(exc).__name__}: {exc}")
                if self.retry.is_retryable_exception(exc) and attempt < self.retry.max_retries:
                    wait = self.retry.delay(attempt)
                    self._log.warning(
                        "%s %s: %s; retry %d/%d in %.2fs",
                        method,
                        endpoint,
                        detail,
                        attempt + 1,
                        self.retry.max_retries,
                        wait,
                    )
                    self._bump(retry=True)
                    self._sleep(wait)
                    attempt += 1
                    continue
                raise ApiError(
                    f"{method} {endpoint} failed after {attempt + 1} attempt(s): {detail}",
                    status_code=None,
                    endpoint=endpoint,
                    body_excerpt="",
                    attempts=attempt + 1,
                ) from None

            status = response.status_code
            self._bump(status=status, attempt=True)
            if status == 429 and limiter is not None:
                limiter.throttled()
            if 200 <= status < 300:
                return self._parse(endpoint, response, attempt + 1, method=method)

            excerpt = self._excerpt(response.text)
            if self.retry.is_retryable_status(status) and attempt < self.retry.max_retries:
                wait = self.retry.delay(attempt, parse_retry_after(response.headers.get("Retry-After")))
                self._log.warning(
                    "%s %s: HTTP %d %r; retry %d/%d in %.2fs",
                    method,
                    endpoint,
                    status,
                    excerpt[:120],
                    attempt + 1,
                    self.retry.max_retries,
                    wait,
                )
                self._bump(retry=True)
                self._sleep(wait)
                attempt += 1
                continue
            raise ApiError(
                f"{method} {endpoint} failed with HTTP {status} after {attempt + 1} attempt(s): {excerpt}",
                status_code=status,
                endpoint=endpoint,
                body_excerpt=excerpt,
                attempts=attempt + 1,
                detail=self._excerpt(error_message(response)),
            )

    def _send(
        self, method: str, url: str, content: bytes, query: dict[str, str] | None, limiter: RateLimiter | None
    ) -> httpx.Response:
        """One HTTP attempt, started when `limiter` allows and marked answered (or failed) on it."""
        if limiter is None:
            return self._http.request(method, url, content=content, headers=self._headers, params=query)
        slot = limiter.acquire_slot()
        try:
            return self._http.request(method, url, content=content, headers=self._headers, params=query)
        finally:
            limiter.answered(slot)

    def _parse(self, endpoint: str, response: httpx.Response, attempts: int, *, method: str = "POST") -> dict[str, Any]:
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError:
            excerpt = self._excerpt(response.text)
            raise ApiError(
                f"{method} {endpoint} returned HTTP {response.status_code} with a non-JSON body: {excerpt}",
                status_code=response.status_code,
                endpoint=endpoint,
                body_excerpt=excerpt,
                attempts=attempts,
            ) from None
        return data if isinstance(data, dict) else {"data": data}


#: Where JSON error bodies put their code and message: Iterable (`code`, `msg`), Gainsight (`errorCode`,
#: `errorDesc`), and the common `error` / `message`.
ERROR_CODE_FIELDS = ("code", "errorCode", "error_code")
ERROR_MESSAGE_FIELDS = ("msg", "errorDesc", "message", "error", "detail")


def error_message(response: httpx.Response) -> str:
    """The API's own words for a failed request: `code: message` from a JSON error body, else the body text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()
    if not isinstance(body, dict):
        return response.text.strip()
    code = next((str(body[f]) for f in ERROR_CODE_FIELDS if isinstance(body.get(f), str | int) and body[f]), "")
    message = next((str(body[f]) for f in ERROR_MESSAGE_FIELDS if isinstance(body.get(f), str) and body[f]), "")
    if not message:
        return response.text.strip()
    return f"{code}: {message}" if code and not message.startswith(f"{code}:") else message


def encoded_batches(
    records: Iterable[T],
    encode: Callable[[T], bytes],
    *,
    max_records: int,
    max_bytes: int,
    envelope_bytes: int,
    on_oversized: Callable[[T, int], None] | None = None,
) -> Iterator[list[tuple[T, bytes]]]:
    """Encode each record once (`encode`) and group them, with their bytes, so each request holds at most
    `max_records` and its body at most `max_bytes`.

    A record costs its encoded length plus one byte for the separating comma; `envelope_bytes` is the size of the
    body with an empty list (e.g. `len(b'{"users":[]}')`). A record that cannot fit even alone is skipped and
    passed to `on_oversized(record, size)`; without a callback, OversizedRecordError is raised.
    """
    if max_records < 1:
        raise ValueError("max_records must be >= 1")
    batch: list[tuple[T, bytes]] = []
    used = envelope_bytes
    for record in records:
        encoded = encode(record)
        size = len(encoded) + 1
        if envelope_bytes + size > max_bytes:
            if on_oversized is None:
                raise OversizedRecordError(f"record of {size} bytes exceeds the {max_bytes}-byte request limit")
            on_oversized(record, size)
            continue
        if batch and (len(batch) >= max_records or used + size > max_bytes):
            yield batch
            batch, used = [], envelope_bytes
        batch.append((record, encoded))
        used += size
    if batch:
        yield batch


def batches_by_size(
    records: Iterable[dict[str, Any]],
    *,
    max_records: int,
    max_bytes: int,
    envelope_bytes: int,
    on_oversized: Callable[[dict[str, Any], int], None] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Group records so each request holds at most `max_records` and its compact JSON body at most `max_bytes`
    (`encoded_batches` with `dumps_compact`, the records without their bytes)."""
    for batch in encoded_batches(
        records,
        dumps_compact,
        max_records=max_records,
        max_bytes=max_bytes,
        envelope_bytes=envelope_bytes,
        on_oversized=on_oversized,
    ):
        yield [record for record, _ in batch]


def joined_body(envelope: bytes, items: Sequence[bytes]) -> bytes:
    """The body `envelope` (compact JSON with exactly one empty list, e.g. `{"users":[]}`) with the encoded
    `items` in that list: the same bytes as encoding the body with the items' values in it."""
    head, empty, tail = envelope.partition(b"[]")
    if not empty or b"[]" in tail:
        raise ValueError(f"an envelope needs exactly one empty list: {envelope[:80]!r}")
    return b"".join((head, b"[", b",".join(items), b"]", tail))


def envelope_size(body_without_records: Mapping[str, Any], records_key: str) -> int:
    """Bytes of `body_without_records` with `records_key` set to an empty list, serialised as sent."""
    return len(dumps_compact({**body_without_records, records_key: []}))


__all__ = [
    "DEFAULT_TIMEOUT",
    "ApiError",
    "ClientStats",
    "JsonApiClient",
    "OversizedRecordError",
    "RateLimiter",
    "RetryPolicy",
    "batches_by_size",
    "dumps_compact",
    "encoded_batches",
    "envelope_size",
    "error_message",
    "joined_body",
    "parse_retry_after",
    "redact",
]
