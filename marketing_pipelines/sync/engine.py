"""Diff an audience against what a destination accepted, send only what changed, and record the outcome.

A record is marked synced only once the destination accepted it, in the same transaction that resolves its
earlier rejections, batch by batch: a sync killed at any point and run again sends what is left. Re-sending a
batch whose outcome was lost is harmless because destinations upsert by key (and events carry deterministic ids).

A request the destination refuses as a whole (HTTP 400, 413 or 422: one bad record fails the lot) is split in two,
and each half sent again, until every bad record stands alone: those are rejected with the destination's message,
every other record is delivered in the same run. Throttling, server errors and timeouts are retried by the client
and never split a batch.

Mirror mode: a destination that declares an `exit` is sent that exit record for every record it accepted before
(in `ops.sync_state`) that has since left the audience; an accepted exit removes the record from the sync state, a
rejected one is retried on the next run. A record never accepted (dry-run only, or rejected) is never exited.

Every record a run sends is logged in `ops.sync_changelog` (added / changed / removed, with its outcome) in the
same transaction as its outcome; the records left unchanged are one `unchanged-skipped` row per run.

Communication limits (`sync.limits`): a record that starts a journey (the destination's `journey`) is sent only
while its person stays within the limits across destinations; otherwise it is deferred (not sent, not marked
synced: a later run sends it) and listed in `ops.sync_deferrals` until it goes out.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from marketing_pipelines.clients._http import ApiError, dumps_compact, encoded_batches
from marketing_pipelines.pii import mask_emails_in
from marketing_pipelines.sync.destination import Api, Audience, Destination, Outbox, Record, Transport
from marketing_pipelines.sync.limits import CommunicationLimits, JourneyWindow
from marketing_pipelines.sync.ops_tables import (
    SYNC_CHANGELOG,
    SYNC_DEFERRALS,
    SYNC_REJECTIONS,
    SYNC_STATE,
    changelog_retention_days,
    ensure_ops_tables,
)
from marketing_pipelines.warehouse import Warehouse

logger = logging.getLogger(__name__)

READ_BATCH_ROWS = 10_000
#: Statuses with which a destination refuses a whole request because of what is in it: bad records (400, 422) or
#: a body too large (413). Such a request is split to isolate the records; any other failure stops the run.
SPLIT_STATUSES = frozenset({400, 413, 422})
#: Records refused alone in one run before the engine stops: past this, the request itself is probably wrong (an
#: endpoint or setting, not a record), and isolating every record would cost about two requests each.
MAX_ISOLATED_PER_RUN = 50
REASON_CHARS = 300


class IsolationLimitError(RuntimeError):
    """More records were refused alone in one run than `max_isolated` allows (the run stops; nothing is lost)."""


@dataclass
class SyncReport:
    """Counts of one sync run; also written to `ops.sync_runs` and shown as asset metadata."""

    destination: str
    mode: str
    run_id: str
    considered: int = 0
    unchanged: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    candidates: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    bisected_requests: int = 0
    """Requests sent to isolate the records of refused requests (also counted in `requests`)."""
    isolated_records: int = 0
    """Records the destination refused alone (each also counted in `rejected`)."""
    rejection_reasons: dict[str, int] = field(default_factory=dict)
    added: int = 0
    """Records sent that the destination did not hold (whatever the outcome; also counted in `sent`)."""
    changed: int = 0
    """Records sent again because they changed or were rejected before (also counted in `sent`)."""
    removed: int = 0
    """Exit records sent for accepted records that left the audience (also counted in `sent`)."""
    deferred: int = 0
    """Journey starts held back by the communication limits (not sent; listed in `ops.sync_deferrals`)."""

    def as_metadata(self) -> dict[str, Any]:
        hidden = {"rejection_reasons", "run_id", "candidates"}
        metadata: dict[str, Any] = {k: v for k, v in asdict(self).items() if k not in hidden}
        metadata["seconds"] = round(self.seconds, 3)
        metadata["rejection_reasons"] = dict(self.rejection_reasons)
        return metadata


def run_sync(
    warehouse: Warehouse,
    destination: Destination[Any],
    transport: Transport,
    *,
    run_id: str,
    max_isolated: int = MAX_ISOLATED_PER_RUN,
    retention_days: int | None = None,
    limits: CommunicationLimits | None = None,
) -> SyncReport:
    """Send the audience's new, changed and previously rejected records to the destination through `transport`
    (`Api(client)`, or `Outbox()` for a dry-run that writes each request body to `ops.outbox`).

    Raises IsolationLimitError when more than `max_isolated` records are refused alone (see the module docstring);
    every outcome recorded until then stays, and the next run sends previously rejected records last.
    Exits follow the upserts (see the module docstring). `retention_days` (default: `SYNC_CHANGELOG_RETENTION_DAYS`,
    else 400) prunes the destination's older changelog rows at the end. `limits` (default: 2 a day, 7 a week)
    bound the journey starts a person receives across destinations (see the module docstring).
    """
    retention = changelog_retention_days() if retention_days is None else retention_days
    ensure_ops_tables(warehouse)
    report = SyncReport(destination=destination.name, mode=transport.mode, run_id=run_id)
    started_at = _now()
    clock = time.monotonic()
    (report.considered,) = warehouse.query(f"select count(*) from {destination.audience.table}")[0]
    window = None
    if destination.journey is not None:
        window = JourneyWindow.load(warehouse, limits or CommunicationLimits(), started_at)

    records = _records(warehouse, destination, report, window, started_at)
    rounds = [(False, _batches(warehouse, destination, report, records, False))]
    if destination.exit is not None:  # read once the upserts are recorded
        exits = _exits(warehouse, destination, report, started_at)
        rounds.append((True, _batches(warehouse, destination, report, exits, True)))
    if isinstance(transport, Outbox):
        for removing, batches in rounds:
            for group in _grouped(batches, OUTBOX_WRITE_RECORDS):
                outcomes = [(record, "dry-run") for batch in group for record in batch.keyed]
                report.sent += len(outcomes)
                _write_outbox(warehouse, destination, group, run_id)
                _log(warehouse, destination, report, outcomes, removing, _started(window, removing))
                report.requests += len(group)
    else:
        requests_before, retries_before = transport.counters()
        for removing, batches in rounds:
            started = _started(window, removing)
            delivery = _Delivery(warehouse, destination, transport, run_id, report, max_isolated, removing, started)
            _send_all(delivery, batches)
        requests_after, retries_after = transport.counters()
        report.requests = requests_after - requests_before
        report.retries = retries_after - retries_before

    report.unchanged = report.considered - report.candidates
    if window is not None:
        window.settle(warehouse)
        _write_deferrals(warehouse, destination.name, window, run_id)
    _close_changelog(warehouse, report, retention)
    report.seconds = time.monotonic() - clock
    _write_run(warehouse, report, started_at)
    logger.info("sync %s (%s): %s", destination.name, report.mode, report.as_metadata())
    return report


Keyed = tuple[str, dict[str, Any], str]
"""(record key, API payload, hash of the audience row)"""
Rejected = dict[int, str]
"""The records of a request the destination rejected: position in the request -> reason."""


#: A dry-run writes its bookkeeping (outbox rows, changelog) for this many records at once, each request body still
#: its own `ops.outbox` row: a write per 50-record Gainsight call scanned the sync state each time, so a dry-run's
#: time grew with the square of the audience.
OUTBOX_WRITE_RECORDS = 10_000

#: Requests on the wire at once: while one waits for its answer (or for the client's rate limiter), the next can
#: go; the next batch is read and built meanwhile. The limiter, not this number, bounds the request rate.
IN_FLIGHT = 2


@dataclass(frozen=True)
class Batch:
    """The records of one request, with the bytes each adds to its body when the destination declares `item`."""

    keyed: list[Keyed]
    items: list[bytes] | None = None

    def __len__(self) -> int:
        return len(self.keyed)

    def payloads(self) -> list[Record]:
        return [payload for _, payload, _ in self.keyed]

    def halves(self) -> tuple[Batch, Batch]:
        middle = len(self.keyed) // 2
        if self.items is None:
            return Batch(self.keyed[:middle]), Batch(self.keyed[middle:])
        return Batch(self.keyed[:middle], self.items[:middle]), Batch(self.keyed[middle:], self.items[middle:])

    def body(self, destination: Destination[Any]) -> bytes:
        """The request body: the encoded items joined, else the destination's body of the records encoded."""
        if self.items is None:
            return dumps_compact(destination.body(self.payloads()))
        return destination.encoded_body(self.items)


def _send_all(delivery: _Delivery, batches: Iterator[Batch]) -> None:
    """Send batch after batch with up to `IN_FLIGHT` requests on the wire, paced by the client's rate limiter,
    while the next batch is read from the warehouse and built. Outcomes are recorded on this thread, one batch at a
    time and in the order the batches were sent, so each is recorded exactly once; only the batches in flight can
    be sent without their outcome recorded: a run killed here resends at most those (destinations upsert)."""
    name = delivery.destination.name
    in_flight: deque[tuple[Batch, Future[Rejected]]] = deque()
    settled = False  # the second request leaves once a first was answered: a wrong key or URL fails one request
    with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix=f"sync-{name}") as sender:
        try:
            for batch in batches:  # built while the previous requests are on the wire
                while len(in_flight) >= (IN_FLIGHT if settled else 1):  # the oldest outcome is recorded first
                    delivery.settle(*in_flight.popleft())
                    settled = True
                delivery.report.sent += len(batch)
                in_flight.append((batch, sender.submit(delivery.send, batch)))
            while in_flight:
                delivery.settle(*in_flight.popleft())
        except BaseException:
            for batch, future in in_flight:  # the run stops: keep what the destination accepted meanwhile
                if future.exception() is None:
                    delivery.record(batch, future.result())
            raise


def _is_refusal(error: ApiError) -> bool:
    return error.status_code in SPLIT_STATUSES


@dataclass
class _Delivery:
    """Records the outcome of each request; isolates the bad records of a request refused as a whole."""

    warehouse: Warehouse
    destination: Destination[Any]
    transport: Api[Any]
    run_id: str
    report: SyncReport
    max_isolated: int
    removing: bool = False
    """Whether the records are exits (an accepted one leaves the sync state)."""
    started: dict[str, str] = field(default_factory=dict)
    """Record key -> the journey it starts (for the changelog); a record's entry goes once its outcome is logged
    (each record's is logged once a run), so a long push does not hold every key it sent."""

    def send(self, batch: Batch) -> Rejected:
        body = None if batch.items is None else batch.body(self.destination)
        return self.transport.send(self.destination, batch.payloads(), body)

    def settle(self, batch: Batch, future: Future[Rejected]) -> None:
        """Record the outcome of a sent batch; a refused batch is split until its bad records stand alone."""
        try:
            rejected = future.result()
        except ApiError as error:
            if not _is_refusal(error):
                raise
            self._isolate(batch, error)
            return
        self.record(batch, rejected)

    def _isolate(self, batch: Batch, error: ApiError) -> None:
        """`batch` was refused as a whole with `error`: bisect it, each part's outcome recorded before the next
        part leaves. k bad records among n cost at most about 2·k·log2(n) requests."""
        if len(batch) == 1:
            self._reject_alone(batch.keyed[0], error)
            return
        left, right = batch.halves()
        left_error = self._attempt(left)
        if left_error is not None:
            self._isolate(left, left_error)
        if left_error is None and error.status_code != 413 and len(right) > 1:
            # refused for a record in it, and the left half went through: the right half holds that record
            self._isolate(right, error)
            return
        right_error = self._attempt(right)  # a lone record is always tried alone before it is rejected
        if right_error is not None:
            self._isolate(right, right_error)

    def _attempt(self, batch: Batch) -> ApiError | None:
        """Send part of a refused batch and record its outcome; returns the refusal when it is refused too."""
        self.report.bisected_requests += 1
        try:
            rejected = self.send(batch)
        except ApiError as error:
            if not _is_refusal(error):
                raise
            return error
        self.record(batch, rejected)
        return None

    def _reject_alone(self, record: Keyed, error: ApiError) -> None:
        if self.report.isolated_records >= self.max_isolated:
            raise IsolationLimitError(
                f"{self.destination.name}: more than {self.max_isolated} records refused alone in one run, so the "
                f"request itself is probably wrong (endpoint, setting or API change), not the records; stopped. "
                f"Last refusal: {mask_emails_in(str(error))}"
            )
        self.report.isolated_records += 1
        self.record(Batch([record]), {0: refusal_reason(error)})

    def record(self, batch: Batch, rejected: Rejected) -> None:
        """Map the rejected positions of a request to record keys (the one place this happens) and record it."""
        keyed = batch.keyed
        reasons = {keyed[position][0]: reason for position, reason in rejected.items()}
        _record_outcome(self.warehouse, self.destination, keyed, reasons, self.report, self.removing, self.started)
        for key, _, _ in keyed:
            self.started.pop(key, None)


def refusal_reason(error: ApiError) -> str:
    """The rejection reason of a record refused alone: the status and the API's message (secrets already scrubbed
    by the client; e-mail addresses masked, as the reason is shown in the UI), trimmed."""
    detail = " ".join(mask_emails_in(error.detail or "no message").split())
    return f"refused alone with HTTP {error.status_code}: {detail}"[:REASON_CHARS]


def _records(
    warehouse: Warehouse,
    destination: Destination[Any],
    report: SyncReport,
    window: JourneyWindow | None,
    started_at: datetime,
) -> Iterator[Keyed]:
    """Stream the records to send; rows that cannot become a payload are recorded as rejected here, and journey
    starts past the communication limits are deferred (`window`)."""
    before = _sql_timestamp(started_at)
    # previously rejected records go last, so a run stopped while isolating them has delivered the rest; the
    # second query runs once the first is read, and leaves out what this run rejected meanwhile
    journeys = window is not None
    queries = (
        _candidates_sql(destination.audience, destination.name, journeys=journeys),
        _candidates_sql(destination.audience, destination.name, rejected_before=before, journeys=journeys),
    )
    frames = (frame for sql in queries for frame in warehouse.iter_batches(sql, READ_BATCH_ROWS))
    for frame in frames:
        report.candidates += len(frame)
        invalid: list[tuple[Keyed, str]] = []
        for row in frame.to_dict("records"):
            key = str(row["record_key"])
            was_synced = bool(row.pop("was_synced"))
            held_journey = row.pop("held_journey", None)
            try:
                payload = destination.payload(row)
            except ValueError as error:
                report.changed += was_synced
                report.added += not was_synced
                row_as_sent = {k: _jsonable(v) for k, v in row.items()}
                invalid.append(((key, row_as_sent, row["payload_hash"]), f"invalid record: {error}"))
                continue
            if window is not None and not _admitted(window, destination, key, payload, was_synced, held_journey):
                report.deferred += 1
                continue
            report.changed += was_synced
            report.added += not was_synced
            yield key, payload, row["payload_hash"]
        if invalid:
            _record_rejections(warehouse, destination, invalid, report, False)


def _admitted(
    window: JourneyWindow,
    destination: Destination[Any],
    key: str,
    payload: Record,
    was_synced: bool,
    held_journey: Any,
) -> bool:
    """Whether a record goes out now: any record that starts no journey does (added with no journey, or changed
    within the journey the destination holds); a journey start does while its person is within the limits."""
    assert destination.journey is not None
    journey = destination.journey(payload)
    held = held_journey if isinstance(held_journey, str) else None  # NULL/NaN: unknown, so counted as a start
    if journey is None or (was_synced and held == journey):
        return True
    return window.admit(key, destination.person_hash(payload), journey)


def _started(window: JourneyWindow | None, removing: bool) -> dict[str, str]:
    """The journeys the records of a round start (exits start none)."""
    return {} if window is None or removing else window.started


def _exits(
    warehouse: Warehouse, destination: Destination[Any], report: SyncReport, left_at: datetime
) -> Iterator[Keyed]:
    """Stream the exit records of the accepted records that left the audience (with their last accepted hash);
    a key the destination's `exit` cannot make a record of is recorded as rejected here."""
    assert destination.exit is not None
    for frame in warehouse.iter_batches(_exits_sql(destination.audience, destination.name), READ_BATCH_ROWS):
        invalid: list[tuple[Keyed, str]] = []
        for key, payload_hash in frame.itertuples(index=False):
            report.removed += 1
            try:
                payload = destination.exit(str(key), left_at)
            except ValueError as error:
                invalid.append(((str(key), {"record_key": str(key)}, payload_hash), f"invalid exit: {error}"))
                continue
            yield str(key), payload, payload_hash
        if invalid:
            _record_rejections(warehouse, destination, invalid, report, True)


def _batches(
    warehouse: Warehouse, destination: Destination[Any], report: SyncReport, records: Iterator[Keyed], removing: bool
) -> Iterator[Batch]:
    """Group records into requests within the destination's count and size limits, each record encoded once: the
    bytes that size a request are the bytes it sends (destinations that declare `item`)."""
    oversized: list[tuple[Keyed, str]] = []

    def on_oversized(record: Keyed, size: int) -> None:
        oversized.append((record, f"payload of {size} bytes exceeds the {destination.max_bytes}-byte limit"))

    for batch in encoded_batches(
        records,
        lambda record: destination.encode_item(record[1]),
        max_records=destination.max_records,
        max_bytes=destination.max_bytes,
        envelope_bytes=destination.envelope_bytes(),
        on_oversized=on_oversized,
    ):
        keyed = [record for record, _ in batch]
        yield Batch(keyed, None if destination.item is None else [encoded for _, encoded in batch])
    if oversized:
        _record_rejections(warehouse, destination, oversized, report, removing)


def _candidates_sql(
    audience: Audience, destination: str, *, rejected_before: str | None = None, journeys: bool = False
) -> str:
    """The audience rows to send: the new and changed ones without an open rejection; or, given `rejected_before`
    (a SQL timestamp), those with a rejection still open that was first recorded before it (the retries of earlier
    runs, never this run's own). By key where the order decides something: the retries, and the journey starts
    (`journeys`: with the journey of the version the destination holds), of which the communication limits admit
    the first. Otherwise in the order the table is read, so the first request leaves while the rest are still
    read: sorting 300,000 payloads first took seconds."""
    columns = ", ".join(audience.columns)
    held_journey = ", synced.journey as held_journey" if journeys else ""
    first_attempt = "" if rejected_before is None else f" and first_attempt_at < {rejected_before}"
    order = "order by audience.record_key" if rejected_before is not None or journeys else ""
    if rejected_before is not None:
        where = "rejected.record_key is not null"
    else:
        changed = "synced.payload_hash is null or synced.payload_hash <> audience.payload_hash"
        where = f"rejected.record_key is null and ({changed})"
    return f"""
        with audience as (
            select
                cast({audience.key_column} as varchar) as record_key,
                {columns},
                {audience.hash_sql()} as payload_hash
            from {audience.table}
            where {audience.key_column} is not null
        ),
        synced as (
            select record_key, payload_hash, journey from {SYNC_STATE} where destination = '{destination}'
        ),
        rejected as (
            select distinct record_key from {SYNC_REJECTIONS}
            where destination = '{destination}' and not resolved{first_attempt}
        )
        select audience.*, case when synced.record_key is null then false else true end as was_synced{held_journey}
        from audience
        left join synced on audience.record_key = synced.record_key
        left join rejected on audience.record_key = rejected.record_key
        where {where}
        {order}
    """


def _exits_sql(audience: Audience, destination: str) -> str:
    """The accepted records of `destination` whose key is no longer in the audience."""
    return f"""
        with audience as (
            select cast({audience.key_column} as varchar) as record_key
            from {audience.table}
            where {audience.key_column} is not null
        )
        select synced.record_key, synced.payload_hash
        from {SYNC_STATE} as synced
        left join audience on synced.record_key = audience.record_key
        where synced.destination = '{destination}' and audience.record_key is null
        order by synced.record_key
    """


def _record_outcome(
    warehouse: Warehouse,
    destination: Destination[Any],
    keyed: list[Keyed],
    reasons: dict[str, str],
    report: SyncReport,
    removing: bool,
    started: Mapping[str, str],
) -> None:
    """In one transaction: log the records in the changelog (with the journey each starts, `started`); mark
    accepted records synced with their journey (an accepted exit: no longer synced) and resolve their rejections;
    record new rejections (`reasons`: record key -> the destination's reason)."""
    import pandas as pd

    name = destination.name
    journey = destination.journey or (lambda payload: None)
    accepted = [(key, payload_hash, journey(payload)) for key, payload, payload_hash in keyed if key not in reasons]
    rejected = [(key, payload, reasons[key]) for key, payload, _ in keyed if key in reasons]
    report.accepted += len(accepted)
    now = _sql_timestamp(_now())
    outcomes = [(record, "rejected" if record[0] in reasons else "accepted") for record in keyed]
    statements = [
        _log_statement(name, report.run_id, now, removing),  # before the state changes: added or changed
        f"""delete from {SYNC_STATE} where destination = '{name}'
            and record_key in (select record_key from accepted_records)""",
        *(
            []
            if removing
            else [
                f"""insert into {SYNC_STATE} (destination, record_key, payload_hash, synced_at, run_id, journey)
            select '{name}', record_key, payload_hash, {now}, '{report.run_id}', journey from accepted_records"""
            ]
        ),
        f"""update {SYNC_REJECTIONS} set resolved = true, resolved_at = {now}
            where destination = '{name}' and not resolved
            and record_key in (select record_key from accepted_records)""",
        *_rejection_statements(name, now),
    ]
    frames = {
        "changelog_records": _changelog_frame(destination, outcomes, started),
        "accepted_records": pd.DataFrame(accepted, columns=["record_key", "payload_hash", "journey"]).astype(
            {"journey": "string"}
        ),
        "rejected_records": _rejections_frame(rejected, report),
    }
    warehouse.execute(statements, frames=frames)


def _record_rejections(
    warehouse: Warehouse,
    destination: Destination[Any],
    rejected: list[tuple[Keyed, str]],
    report: SyncReport,
    removing: bool,
) -> None:
    """Records that never became a request: recorded as rejections so they are visible and retried, and logged
    (no person: the record was never built)."""
    now = _sql_timestamp(_now())
    frames = {
        "changelog_records": _changelog_frame(None, [(record, "rejected") for record, _ in rejected]),
        "rejected_records": _rejections_frame(
            [(key, payload, reason) for (key, payload, _), reason in rejected], report
        ),
    }
    statements = [
        _log_statement(destination.name, report.run_id, now, removing),
        *_rejection_statements(destination.name, now),
    ]
    warehouse.execute(statements, frames=frames)


def _log(
    warehouse: Warehouse,
    destination: Destination[Any],
    report: SyncReport,
    outcomes: list[tuple[Keyed, str]],
    removing: bool,
    started: Mapping[str, str],
) -> None:
    """Log records in the changelog with their outcome (the dry-run's: nothing else changes)."""
    now = _sql_timestamp(_now())
    frames = {"changelog_records": _changelog_frame(destination, outcomes, started)}
    warehouse.execute([_log_statement(destination.name, report.run_id, now, removing)], frames=frames)


def _changelog_frame(
    destination: Destination[Any] | None,
    outcomes: Iterable[tuple[Keyed, str]],
    started: Mapping[str, str] | None = None,
) -> Any:
    """The `changelog_records` of `_log_statement`: key, person (hashed e-mail; None without `destination`), the
    hash of the audience row (of the last accepted one, for an exit), outcome, the journey it starts (`started`)."""
    import pandas as pd

    started = started or {}
    person = (lambda payload: None) if destination is None else destination.person_hash
    rows = [
        (key, person(payload), payload_hash, outcome, started.get(key))
        for (key, payload, payload_hash), outcome in outcomes
    ]
    frame = pd.DataFrame(rows, columns=["record_key", "person", "payload_hash", "outcome", "journey"])
    return frame.astype({"person": "string", "payload_hash": "string", "journey": "string"})


def _log_statement(destination: str, run_id: str, now: str, removing: bool) -> str:
    """Append `changelog_records` to the changelog: an exit is `removed`; any other record `changed` when the
    destination holds an accepted version of it, else `added` (so run it before the sync state changes)."""
    action = "'removed'" if removing else "case when synced.record_key is null then 'added' else 'changed' end"
    return f"""
        insert into {SYNC_CHANGELOG}
            (run_id, destination, record_key, person, action, payload_hash, outcome, record_count, logged_at, journey)
        select '{run_id}', '{destination}', logged.record_key, logged.person, {action}, logged.payload_hash,
            logged.outcome, 1, {now}, logged.journey
        from changelog_records as logged
        left join (select record_key from {SYNC_STATE} where destination = '{destination}') as synced
            on logged.record_key = synced.record_key
    """


def _close_changelog(warehouse: Warehouse, report: SyncReport, retention_days: int) -> None:
    """One `unchanged-skipped` row counting the records left alone, then prune the destination's rows older than
    `retention_days`, except each synced record's row of the run that put it in its current state (so "who was in
    the audience on date D" stays answerable for any D within the retention)."""
    now = _now()
    destination = report.destination
    statements = []
    if report.unchanged:
        statements.append(
            f"""insert into {SYNC_CHANGELOG}
                (run_id, destination, record_key, person, action, payload_hash, outcome, record_count, logged_at)
            values ('{report.run_id}', '{destination}', null, null, 'unchanged-skipped', null, null,
                {report.unchanged}, {_sql_timestamp(now)})"""
        )
    statements.append(
        f"""delete from {SYNC_CHANGELOG}
        where destination = '{destination}' and logged_at < {_sql_timestamp(now - timedelta(days=retention_days))}
        and not exists (
            select 1 from {SYNC_STATE} as synced
            where synced.destination = '{destination}'
            and synced.record_key = {SYNC_CHANGELOG}.record_key
            and synced.run_id = {SYNC_CHANGELOG}.run_id
        )"""
    )
    warehouse.execute(statements)


def _write_deferrals(warehouse: Warehouse, destination: str, window: JourneyWindow, run_id: str) -> None:
    """Make `ops.sync_deferrals` hold exactly this run's deferrals of `destination`: a record sent since (or gone)
    leaves it; one deferred again keeps its first `deferred_at` and gets the new `sendable_at`."""
    now = _sql_timestamp(_now())
    statements = [
        f"""delete from {SYNC_DEFERRALS} where destination = '{destination}'
            and record_key not in (select record_key from deferred_records)""",
        f"""update {SYNC_DEFERRALS} set
                person = deferred_records.person,
                reason = deferred_records.reason,
                sendable_at = cast(deferred_records.sendable_at as timestamp),
                run_id = '{run_id}'
            from deferred_records
            where {SYNC_DEFERRALS}.destination = '{destination}'
            and {SYNC_DEFERRALS}.record_key = deferred_records.record_key""",
        f"""insert into {SYNC_DEFERRALS}
            (destination, record_key, person, reason, deferred_at, sendable_at, run_id)
            select '{destination}', record_key, person, reason, {now}, cast(sendable_at as timestamp), '{run_id}'
            from deferred_records
            where record_key not in (
                select record_key from {SYNC_DEFERRALS} where destination = '{destination}'
            )""",
    ]
    warehouse.execute(statements, frames={"deferred_records": window.deferrals_frame()})


def _rejections_frame(rejected: list[tuple[str, dict[str, Any], str]], report: SyncReport) -> Any:
    import pandas as pd

    report.rejected += len(rejected)
    for _, _, reason in rejected:
        report.rejection_reasons[reason] = report.rejection_reasons.get(reason, 0) + 1
    rows = [(key, dumps_compact(payload).decode(), reason) for key, payload, reason in rejected]
    return pd.DataFrame(rows, columns=["record_key", "payload", "reason"])


def _rejection_statements(destination: str, now: str) -> list[str]:
    """Upsert `rejected_records` into the open rejections: count attempts, keep the first attempt time."""
    return [
        f"""update {SYNC_REJECTIONS} set
                reason = rejected_records.reason,
                payload = rejected_records.payload,
                last_attempt_at = {now},
                attempts = {SYNC_REJECTIONS}.attempts + 1
            from rejected_records
            where {SYNC_REJECTIONS}.destination = '{destination}' and not {SYNC_REJECTIONS}.resolved
            and {SYNC_REJECTIONS}.record_key = rejected_records.record_key""",
        f"""insert into {SYNC_REJECTIONS}
            (destination, record_key, payload, reason, first_attempt_at, last_attempt_at, attempts, resolved)
            select '{destination}', record_key, payload, reason, {now}, {now}, 1, false
            from rejected_records
            where not exists (
                select 1 from {SYNC_REJECTIONS} as existing
                where existing.destination = '{destination}' and not existing.resolved
                and existing.record_key = rejected_records.record_key
            )""",
    ]


def _grouped(batches: Iterable[Batch], records: int) -> Iterator[list[Batch]]:
    """Consecutive batches, grouped until a group holds at least `records` records (the last one: what is left)."""
    group: list[Batch] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += len(batch)
        if size >= records:
            yield group
            group, size = [], 0
    if group:
        yield group


def _write_outbox(warehouse: Warehouse, destination: Destination[Any], batches: list[Batch], run_id: str) -> None:
    """One `ops.outbox` row per request a live run would send: its body, as the bytes it would send."""
    import pandas as pd

    now = _now()
    frame = pd.DataFrame(
        [
            {
                "run_id": run_id,
                "destination": destination.name,
                "endpoint": destination.endpoint,
                "record_count": len(batch),
                "body": batch.body(destination).decode(),
                "created_at": now,
            }
            for batch in batches
        ]
    )
    warehouse.write_frame("ops", "outbox", frame)


def _write_run(warehouse: Warehouse, report: SyncReport, started_at: datetime) -> None:
    import pandas as pd

    hidden = {"rejection_reasons", "candidates", "bisected_requests", "isolated_records"}  # metadata only
    row = {k: v for k, v in asdict(report).items() if k not in hidden}
    row.update(started_at=started_at, finished_at=_now())
    warehouse.write_frame("ops", "sync_runs", pd.DataFrame([row]))


def _jsonable(value: Any) -> Any:
    """A rejected row's value as JSON can hold it: money stays an exact number, other types become text."""
    if isinstance(value, Decimal) and value.is_finite():
        return value
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _sql_timestamp(value: datetime) -> str:
    return f"cast('{value.isoformat(sep=' ')}' as timestamp)"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
