"""Signup events as they land: one event, and a landed JSON-lines file of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devtools.iterable_emulator import IterableEmulator
    from marketing_pipelines.resources import WarehouseResource

API_KEY = "sk-test-signups-0123456789"
#: The `GitLab Marketing` message type an unsubscribed person is opted out of.
GITLAB_MARKETING = 4321


def event(event_id: str, email: str, **overrides: Any) -> dict[str, Any]:
    """A valid signup event of a company namespace."""
    base = {
        "event_id": event_id,
        "occurred_at": "2026-11-20T10:00:00Z",
        "email": email,
        "user_id": 7,
        "namespace_id": 10,
        "company": "Acme",
        "companyNamespace": True,
        "country": "Germany",
        "employeeBucket": "100-499",
        "firstName": "Jane",
        "lastName": "Doe",
        "latest_trial_start_date": None,
        "signupReason": "I want to use GitLab CI",
        "state": None,
        "userRole": "other",
    }
    return {**base, **overrides}


def land(landing: Path, kind: str, name: str, events: list[dict[str, Any]]) -> Path:
    """Write ``events`` as the file ``landing/kind/name``, one JSON object a line."""
    folder = landing / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def live_resources(
    warehouse: Path | WarehouseResource, emulator: IterableEmulator, *, message_type_id: int | None = GITLAB_MARKETING
) -> dict[str, Any]:
    """The code location's resources: this warehouse (a DuckDB file or a resource), Iterable live on `emulator`."""
    from marketing_pipelines.resources import IterableResource, WarehouseResource, build_resources

    if isinstance(warehouse, Path):
        warehouse = WarehouseResource(kind="duckdb", duckdb_path=str(warehouse))
    iterable = IterableResource(api_key=API_KEY, base_url=emulator.base_url, marketing_message_type_id=message_type_id)
    return build_resources({}, warehouse=warehouse, iterable=iterable)
