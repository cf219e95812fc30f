"""Diff an audience against what a destination accepted, send only what changed, and record the outcome.

A record is marked synced only once the destination accepted it, in the same transaction that resolves its
earlier rejections, batch by batch: a sync killed at any point and run again sends what is left. Re-sending a
batch whose outcome was lost is harmless because destinations upsert by key (and events carry deterministic ids).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from marketing_pipelines.clients._http import JsonApiClient, batches_by_size
from marketing_pipelines.sync.ops_tables import SYNC_REJECTIONS, SYNC_STATE, ensure_ops_tables
from marketing_pipelines.warehouse import Warehouse

logger = logging.getLogger(__name__)

READ_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class Audience:
    """Where the records come from: a table, its key column and the columns that make up a record."""

    table: str
    key_column: str
    columns: Sequence[str]

    def hash_sql(self) -> str:
        parts = " || '|' || ".join(f"coalesce(cast({c} as varchar), '<null>')" for c in self.columns)
        return f"md5({parts})"


@dataclass
class BatchOutcome:
    """What the destination said about one request: rejected records with reasons; the rest were accepted.

    Rejections are keyed like the audience key (`rejected`) or, for APIs that answer by position, by the index of
    the record in the request (`rejected_at`); the engine maps positions back to keys.
    """

    rejected: dict[str, str] = field(default_factory=dict)
    rejected_at: dict[int, str] = field(default_factory=dict)

    def by_key(self, keys: Sequence[str]) -> dict[str, str]:
        """Every rejection keyed by record key, given the keys of the request's records in order."""
        rejected = dict(self.rejected)
        for index, reason in self.rejected_at.items():
            rejected.setdefault(keys[index], reason)
        return rejected


class Destination(Protocol):
    """One API endpoint the engine can push records to."""

    name: str
    endpoint: str

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        """The API record for an audience row; raises ValueError for a row that cannot be sent."""

    max_records: int
    """Records per request."""
    max_bytes: int
    """Bytes per request body."""

    def envelope_bytes(self) -> int:
        """Bytes of a request body holding no records."""

    def request_body(self, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        """The JSON body of one request (what dry-run writes to the outbox)."""

    def send(self, payloads: list[dict[str, Any]]) -> BatchOutcome:
        """Send one request (pacing and retries included); rejections are keyed like the audience key."""

    def counters(self) -> tuple[int, int]:
        """HTTP requests and retries made so far."""


ClientT = TypeVar("ClientT", bound=JsonApiClient)


class ClientDestination(Generic[ClientT]):
    """The parts every API-backed destination shares: a client (None = dry-run only) and its counters."""

    name: str
    client: ClientT | None

    def require_client(self) -> ClientT:
        if self.client is None:
            raise RuntimeError(f"no API client: {getattr(self, 'name', 'this destination')} runs in dry-run only")
        return self.client

    def counters(self) -> tuple[int, int]:
        if self.client is None:
            return 0, 0
        return self.client.stats.requests, self.client.stats.retries


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
    rejection_reasons: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        hidden = {"rejection_reasons", "run_id", "candidates"}
        metadata: dict[str, Any] = {k: v for k, v in asdict(self).items() if k not in hidden}
        metadata["seconds"] = round(self.seconds, 3)
        metadata["rejection_reasons"] = dict(self.rejection_reasons)
        return metadata


def run_sync(
    warehouse: Warehouse,
    audience: Audience,
    destination: Destination,
    *,
    dry_run: bool,
    run_id: str,
) -> SyncReport:
    """Send the audience's new, changed and previously rejected records to the destination."""
    ensure_ops_tables(warehouse)
    report = SyncReport(destination=destination.name, mode="dry-run" if dry_run else "live", run_id=run_id)
    started_at = _now()
    clock = time.monotonic()
    requests_before, retries_before = destination.counters()
    (report.considered,) = warehouse.query(f"select count(*) from {audience.table}")[0]

    batches = _batches(warehouse, audience, destination, report)
    if dry_run:
        for keyed in batches:
            report.sent += len(keyed)
            _write_outbox(warehouse, destination, [payload for _, payload, _ in keyed], run_id)
            report.requests += 1
    else:
        _send_all(warehouse, destination, batches, run_id, report)

    report.unchanged = report.considered - report.candidates
    if not dry_run:
        requests_after, retries_after = destination.counters()
        report.requests = requests_after - requests_before
        report.retries = retries_after - retries_before
    report.seconds = time.monotonic() - clock
    _write_run(warehouse, report, started_at)
    logger.info("sync %s (%s): %s", destination.name, report.mode, report.as_metadata())
    return report


Keyed = tuple[str, dict[str, Any], str]
"""(record key, API payload, hash of the audience row)"""


def _send_all(
    warehouse: Warehouse, destination: Destination, batches: Iterator[list[Keyed]], run_id: str, report: SyncReport
) -> None:
    """Send batch after batch, one request in flight: while it is on the wire (and paced by the client's rate
    limiter), the next batch is read from the warehouse and built. Each outcome is recorded before the next request
    leaves, so only the in-flight batch can be sent without its outcome recorded: a run killed here resends at
    most that batch."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sync-{destination.name}") as sender:
        in_flight: tuple[list[Keyed], Future[BatchOutcome]] | None = None
        for keyed in batches:  # the next batch is read and built while the previous request is on the wire
            if in_flight is not None:  # its outcome is recorded before the next request leaves (raises: stop)
                _record_outcome(warehouse, destination.name, in_flight[0], in_flight[1].result(), run_id, report)
            report.sent += len(keyed)
            in_flight = (keyed, sender.submit(destination.send, [payload for _, payload, _ in keyed]))
        if in_flight is not None:
            _record_outcome(warehouse, destination.name, in_flight[0], in_flight[1].result(), run_id, report)


def _records(warehouse: Warehouse, audience: Audience, destination: Destination, report: SyncReport) -> Iterator[Keyed]:
    """Stream the records to send; rows that cannot become a payload are recorded as rejected here."""
    for frame in warehouse.iter_batches(_candidates_sql(audience, destination.name), READ_BATCH_ROWS):
        report.candidates += len(frame)
        invalid: list[tuple[str, dict[str, Any], str]] = []
        for row in frame.to_dict("records"):
            key = str(row["record_key"])
            try:
                payload = destination.to_payload(row)
            except ValueError as error:
                invalid.append((key, {k: _jsonable(v) for k, v in row.items()}, f"invalid record: {error}"))
                continue
            yield key, payload, row["payload_hash"]
        if invalid:
            _record_rejections(warehouse, destination.name, invalid, report)


def _batches(
    warehouse: Warehouse, audience: Audience, destination: Destination, report: SyncReport
) -> Iterator[list[Keyed]]:
    """Group records into requests within the destination's count and size limits (the client's batcher)."""
    by_payload: dict[int, Keyed] = {}
    oversized: list[tuple[str, dict[str, Any], str]] = []

    def payloads() -> Iterator[dict[str, Any]]:
        for record in _records(warehouse, audience, destination, report):
            by_payload[id(record[1])] = record
            yield record[1]

    def on_oversized(payload: dict[str, Any], size: int) -> None:
        key, _, _ = by_payload.pop(id(payload))
        oversized.append((key, payload, f"payload of {size} bytes exceeds the {destination.max_bytes}-byte limit"))

    for batch in batches_by_size(
        payloads(),
        max_records=destination.max_records,
        max_bytes=destination.max_bytes,
        envelope_bytes=destination.envelope_bytes(),
        on_oversized=on_oversized,
    ):
        yield [by_payload.pop(id(payload)) for payload in batch]
    if oversized:
        _record_rejections(warehouse, destination.name, oversized, report)


def _candidates_sql(audience: Audience, destination: str) -> str:
    columns = ", ".join(audience.columns)
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
            select record_key, payload_hash from {SYNC_STATE} where destination = '{destination}'
        ),
        rejected as (
            select distinct record_key from {SYNC_REJECTIONS} where destination = '{destination}' and not resolved
        )
        select audience.*
        from audience
        left join synced on audience.record_key = synced.record_key
        left join rejected on audience.record_key = rejected.record_key
        where synced.payload_hash is null
           or synced.payload_hash <> audience.payload_hash
           or rejected.record_key is not null
        order by audience.record_key
    """


def _record_outcome(
    warehouse: Warehouse,
    destination: str,
    keyed: list[Keyed],
    outcome: BatchOutcome,
    run_id: str,
    report: SyncReport,
) -> None:
    """In one transaction: mark accepted records synced and resolve their rejections; record new rejections."""
    import pandas as pd

    reasons = outcome.by_key([key for key, _, _ in keyed])
    accepted = [(key, payload_hash) for key, _, payload_hash in keyed if key not in reasons]
    rejected = [(key, payload, reasons[key]) for key, payload, _ in keyed if key in reasons]
    report.accepted += len(accepted)
    now = _sql_timestamp(_now())
    statements = [
        f"""delete from {SYNC_STATE} where destination = '{destination}'
            and record_key in (select record_key from accepted_records)""",
        f"""insert into {SYNC_STATE} (destination, record_key, payload_hash, synced_at, run_id)
            select '{destination}', record_key, payload_hash, {now}, '{run_id}' from accepted_records""",
        f"""update {SYNC_REJECTIONS} set resolved = true, resolved_at = {now}
            where destination = '{destination}' and not resolved
            and record_key in (select record_key from accepted_records)""",
        *_rejection_statements(destination, now),
    ]
    frames = {
        "accepted_records": pd.DataFrame(accepted, columns=["record_key", "payload_hash"]),
        "rejected_records": _rejections_frame(rejected, report),
    }
    warehouse.execute(statements, frames=frames)


def _record_rejections(
    warehouse: Warehouse, destination: str, rejected: list[tuple[str, dict[str, Any], str]], report: SyncReport
) -> None:
    """Records that never became a request: recorded as rejections so they are visible and retried."""
    now = _sql_timestamp(_now())
    warehouse.execute(
        _rejection_statements(destination, now), frames={"rejected_records": _rejections_frame(rejected, report)}
    )


def _rejections_frame(rejected: list[tuple[str, dict[str, Any], str]], report: SyncReport) -> Any:
    import pandas as pd

    report.rejected += len(rejected)
    for _, _, reason in rejected:
        report.rejection_reasons[reason] = report.rejection_reasons.get(reason, 0) + 1
    rows = [(key, json.dumps(payload, default=str), reason) for key, payload, reason in rejected]
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


def _write_outbox(warehouse: Warehouse, destination: Destination, payloads: list[dict[str, Any]], run_id: str) -> None:
    import pandas as pd

    body = json.dumps(destination.request_body(payloads), default=str)
    frame = pd.DataFrame(
        [
            {
                "run_id": run_id,
                "destination": destination.name,
                "endpoint": destination.endpoint,
                "record_count": len(payloads),
                "body": body,
                "created_at": _now(),
            }
        ]
    )
    warehouse.write_frame("ops", "outbox", frame)


def _write_run(warehouse: Warehouse, report: SyncReport, started_at: datetime) -> None:
    import pandas as pd

    row = {k: v for k, v in asdict(report).items() if k not in {"rejection_reasons", "candidates"}}
    row.update(started_at=started_at, finished_at=_now())
    warehouse.write_frame("ops", "sync_runs", pd.DataFrame([row]))


def _jsonable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _sql_timestamp(value: datetime) -> str:
    return f"cast('{value.isoformat(sep=' ')}' as timestamp)"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
