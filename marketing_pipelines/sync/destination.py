"""A destination is a declaration: where its records come from, how a row becomes a record and records a request
body, which client method sends them, and how the destination names the records it rejects.

The engine (`sync.engine`) does everything else: diffing, batching within the limits, pacing through the client,
splitting refused requests, mapping rejections back to record keys, run history. Where the records go is the
transport: `Api(client)` sends them, `Outbox()` (dry-run) writes each request body to `ops.outbox` instead.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson

from marketing_pipelines.clients._http import JsonApiClient, dumps_compact, joined_body
from marketing_pipelines.pii import EMAIL_PATTERN

ClientT = TypeVar("ClientT", bound=JsonApiClient)
Record = dict[str, Any]

#: Iterable's bulk endpoints (and the engine's guard for APIs that document none) take bodies up to 4 MB.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Audience:
    """Where the records come from: a table, its key column and the columns that make up a record."""

    table: str
    key_column: str
    columns: Sequence[str]

    def hash_sql(self) -> str:
        parts = " || '|' || ".join(f"coalesce(cast({c} as varchar), '<null>')" for c in self.columns)
        return f"md5({parts})"


class Answer(Protocol):
    """What a client method returns: the records the destination rejected, with its reason."""

    @property
    def failed(self) -> Mapping[Any, str]:
        """Rejections keyed by what the API names a record by: an identity (e-mail, event name) or a position."""


@dataclass(frozen=True)
class Destination(Generic[ClientT]):
    """One API endpoint as the engine sees it."""

    name: str
    """Names the destination's rows in `ops.sync_state`, `ops.sync_rejections`, `ops.sync_runs` and `ops.outbox`."""
    audience: Audience
    endpoint: str
    """The path a request goes to (written to the outbox)."""
    payload: Callable[[Mapping[str, Any]], Record]
    """The record for an audience row; raises ValueError for a row that cannot be sent."""
    body: Callable[[list[Record]], dict[str, Any]]
    """The JSON body of one request holding these records."""
    call: Callable[[ClientT, list[Record]], Answer]
    """The client method that sends one request of these records (paced and retried by the client)."""
    identities: Callable[[Record], Sequence[str]] | None = None
    """The names the API may reject a record by (its e-mail, event name); None: by its position in the request."""
    max_records: int = 1000
    max_bytes: int = DEFAULT_MAX_BYTES
    exit: Callable[[str, datetime], Record] | None = None
    """Mirror mode: the record that marks a record key out of the audience at the destination, sent (through
    `call`) when a record the destination accepted has left the audience, with the run's time. None: the records
    are an event stream, and an event that leaves the audience has nothing to undo."""
    person: Callable[[Record], str | None] | None = None
    """The e-mail of the person a record (or exit record) reaches; `ops.sync_changelog` keeps its hash."""
    journey: Callable[[Record], str | None] | None = None
    """Marketing: the journey a record starts at the destination (an event name, a program), None for a record
    that starts none. A record starts its journey when it is added, or changed to a journey other than the one the
    destination holds; those count toward the communication limits (`sync.limits`) and are deferred past them.
    None: every record of the destination is operational (profile updates, opt-outs, exits, companies), never
    counted nor deferred."""
    item: Callable[[Record], Any] | None = None
    """When a request body is `body([])` with one JSON value per record in its one list, in record order: that
    value of a record. The engine then encodes each record once, sizes requests from those bytes and sends the
    joined bytes through `call_encoded`. None: each request body is built by `body` and encoded as a whole."""
    call_encoded: Callable[[ClientT, list[Record], bytes], Answer] | None = None
    """With `item`: the client method that sends one request of these records as the body already encoded."""

    def person_hash(self, record: Record) -> str | None:
        """The changelog's identity of the person `record` reaches (see `person_hash`), None without one."""
        email = self.person(record) if self.person is not None else None
        return person_hash(email) if email else None

    def envelope_bytes(self) -> int:
        """Bytes of a request body holding no records."""
        return len(dumps_compact(self.body([])))

    def encode_item(self, record: Record) -> bytes:
        """The bytes `record` adds to a request body: its `item` encoded, else the record itself (for sizing)."""
        return dumps_compact(record if self.item is None else self.item(record))

    def encoded_body(self, items: Sequence[bytes]) -> bytes:
        """The request body of the records whose `encode_item` bytes are `items` (requires `item`): the same bytes
        as `dumps_compact(body(records))`, joined instead of encoded again."""
        return joined_body(dumps_compact(self.body([])), items)

    def batched(self, max_records: int) -> Destination[ClientT]:
        """The same destination with `max_records` records a request."""
        return replace(self, max_records=max_records)

    def rejections(self, records: Sequence[Record], failed: Mapping[Any, str]) -> dict[int, str]:
        """The positions of the rejected records of a request, with the destination's reason."""
        if self.identities is None:
            return {position: failed[position] for position in range(len(records)) if position in failed}
        rejected: dict[int, str] = {}
        for position, record in enumerate(records):
            reason = next((failed[name] for name in self.identities(record) if name in failed), None)
            if reason is not None:
                rejected[position] = reason
        return rejected


@dataclass
class Api(Generic[ClientT]):
    """Live: records go to the API through `client`."""

    client: ClientT
    mode = "live"

    def send(
        self, destination: Destination[ClientT], records: list[Record], body: bytes | None = None
    ) -> dict[int, str]:
        """Send one request (`body`: its bytes, already encoded); the positions of the records it rejected, with
        reasons."""
        if body is None or destination.call_encoded is None:
            answer = destination.call(self.client, records)
        else:
            answer = destination.call_encoded(self.client, records, body)
        return destination.rejections(records, answer.failed)

    def counters(self) -> tuple[int, int]:
        """HTTP requests and retries made so far."""
        return self.client.stats.requests, self.client.stats.retries


@dataclass
class Outbox:
    """Dry-run: each request body is written to `ops.outbox` instead of sent, and nothing is marked synced."""

    mode = "dry-run"


Transport = Api[Any] | Outbox


def email_of(row: Mapping[str, Any], column: str = "email") -> str:
    """The row's e-mail address; ValueError when it is not one."""
    email = row.get(column)
    if not isinstance(email, str) or not EMAIL_PATTERN.match(email):
        raise ValueError(f"not an e-mail address: {email!r}")
    return email


def record_key(row: Mapping[str, Any], column: str) -> str:
    """The row's record key: the engine's `record_key` (the key column cast to text), else `column` itself."""
    key = row.get("record_key", row.get(column))
    if key is None:
        raise ValueError(f"no {column}")
    return str(key)


def json_object(value: Any, column: str = "data_fields") -> dict[str, Any]:
    """A JSON object column (text or already a mapping) as a dict; ValueError when it is not one."""
    try:
        if isinstance(value, str):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:  # what the fast parser refuses (huge integers, NaN) json reads or explains
                return json.loads(value)
        return dict(value or {})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{column} is not a JSON object: {error}") from None


def person_hash(email: str) -> str:
    """The person column of `ops.sync_changelog`: the md5 of the trimmed, lower-cased e-mail, as SQL computes it on
    every engine (`md5(lower(trim(email)))`)."""
    return hashlib.md5(email.strip().lower().encode("utf-8")).hexdigest()
