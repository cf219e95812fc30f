"""Iterable as a sync-engine destination: audience rows → `users/bulkUpdate` user objects."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Any

from marketing_pipelines.clients._http import envelope_size
from marketing_pipelines.clients.iterable import (
    BULK_UPDATE_USERS,
    DEFAULT_USERS_PER_REQUEST,
    MAX_BODY_BYTES,
    IterableClient,
)
from marketing_pipelines.sync.engine import Audience, BatchOutcome

USER_AUDIENCE = Audience(
    table="audiences.iterable_user_audience",
    key_column="email",
    columns=("email", "user_id", "data_fields"),
)

EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@lru_cache(maxsize=1)
def user_schema() -> dict[str, Any]:
    """JSON schema of one `bulkUpdate` user object, vendored from Iterable's API spec."""
    text = resources.files("marketing_pipelines.clients").joinpath("iterable_user_schema.json").read_text()
    return json.loads(text)


def user_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The `bulkUpdate` user object for an audience row (identified by e-mail, as the project is)."""
    email = row.get("email")
    if not isinstance(email, str) or not EMAIL_PATTERN.match(email):
        raise ValueError(f"not an e-mail address: {email!r}")
    data_fields = row.get("data_fields")
    try:
        fields = json.loads(data_fields) if isinstance(data_fields, str) else dict(data_fields or {})
    except (TypeError, ValueError) as error:
        raise ValueError(f"data_fields is not a JSON object: {error}") from None
    if row.get("user_id") is not None:
        fields["gitlabUserId"] = str(row["user_id"])
    return {"email": email, "dataFields": fields, "mergeNestedObjects": False}


class IterableUserDestination:
    """`POST /api/users/bulkUpdate`: 1,000 users and 4 MB a request, paced by the client (5 requests/s)."""

    name = "iterable_users"
    endpoint = BULK_UPDATE_USERS
    max_bytes = MAX_BODY_BYTES

    def __init__(self, client: IterableClient | None, *, max_records: int = DEFAULT_USERS_PER_REQUEST) -> None:
        self.client = client
        self.max_records = max_records

    def envelope_bytes(self) -> int:
        return envelope_size({}, "users")

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        return user_payload(row)

    def request_body(self, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        return {"users": payloads}

    def send(self, payloads: list[dict[str, Any]]) -> BatchOutcome:
        if self.client is None:
            raise RuntimeError("no Iterable client: this destination runs in dry-run only")
        result = self.client.bulk_update_users(payloads)
        return BatchOutcome(rejected=dict(result.failed))

    def counters(self) -> tuple[int, int]:
        if self.client is None:
            return 0, 0
        return self.client.stats.requests, self.client.stats.retries
