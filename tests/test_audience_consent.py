"""Consent first in the Iterable audience: an e-mail any opted-out contact carries is never sent, built by real dbt."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from marketing_pipelines.defs.iterable import checks
from marketing_pipelines.resources import WarehouseResource
from tests.support.dbt import build_from_raw
from tests.support.jobs import run_sensor_and_jobs
from tests.support.raw import crm_person
from tests.support.signups import API_KEY, GITLAB_MARKETING, event, land, live_resources
from tests.support.warehouses import copy_warehouse

AS_OF = "2026-11-20"
SHARED = "shared@example.com"
#: A lead in Inquiry from a Demo, created at the start of 2025, with 10 points.
PERSON_DEFAULTS = {"initial_source": "Demo", "person_score": 10, "created_at": datetime.fromisoformat("2025-01-01")}


def person(person_id: int, email: str, updated_at: str, **fields: object) -> dict[str, object]:
    return crm_person(person_id, datetime.fromisoformat(updated_at), **{**PERSON_DEFAULTS, "email": email, **fields})


def user(user_id: int, email: str) -> dict[str, object]:
    return {"user_id": user_id, "email": email, "created_at": datetime.fromisoformat("2026-11-01T09:30:00")}


RAW_ROWS = {
    "gitlab_users": [
        user(1, SHARED),
        user(2, "kept@example.com"),
        *(user(10 + i, email) for i, email in enumerate(("cr@example.com", "tab@example.com", "nl@example.com"))),
        user(20, "nullid@example.com"),
    ],
    "gitlab_namespaces": [
        {
            "namespace_id": 10,
            "namespace_name": "acme",
            "creator_user_id": 1,
            "created_at": datetime.fromisoformat("2026-11-01T10:00:00"),
            "plan_title": "Free",
        },
    ],
    "gitlab_members": [
        {"namespace_id": 10, "user_id": 1, "access_level": 50},
        {"namespace_id": 10, "user_id": 2, "access_level": 30},
    ],
    "crm_persons": [
        # Person 1 carries the shared e-mail; person 2 (unsubscribed) was merged into it, so person 1 is opted out.
        person(1, SHARED, "2025-02-01"),
        person(2, "old.address@example.com", "2025-03-01", merged_into_person_id=1),
        # Person 3, a separate and newer CRM record with the same e-mail, is opted in.
        person(3, SHARED, "2025-06-01"),
        person(4, "kept@example.com", "2025-02-01"),
    ],
    "marketo_unsubscribes": [
        {
            "event_id": "u-1",
            "email": "old.address@example.com",
            "unsubscribed_at": datetime.fromisoformat("2025-04-01"),
        },
        # a CRLF export, a tab, a trailing newline, and an event that arrived without an id: each still opts out
        {"event_id": "u-2", "email": "cr@example.com\r", "unsubscribed_at": datetime.fromisoformat("2025-04-01")},
        {"event_id": "u-3", "email": "\tTab@Example.com", "unsubscribed_at": datetime.fromisoformat("2025-04-01")},
        {"event_id": "u-4", "email": "nl@example.com\n", "unsubscribed_at": datetime.fromisoformat("2025-04-01")},
        {"event_id": None, "email": "nullid@example.com", "unsubscribed_at": datetime.fromisoformat("2025-04-01")},
    ],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw rows built once; each test gets a copy."""
    return build_from_raw(tmp_path_factory.mktemp("consent") / "warehouse.duckdb", RAW_ROWS, as_of=AS_OF).path


def test_an_email_any_opted_out_contact_carries_is_left_out_and_the_check_passes(built, tmp_path):
    warehouse = copy_warehouse(built, tmp_path / "warehouse.duckdb")
    path = warehouse.path

    opted_in = dict(
        warehouse.query("select person_id, is_opted_in from marts.marketing_contacts where person_id in (1, 3)")
    )
    assert opted_in == {1: False, 3: True}, "the two CRM records of one e-mail disagree on consent"
    emails = {email for (email,) in warehouse.query("select email from audiences.iterable_user_audience")}
    assert emails == {"kept@example.com"}, "left out: the shared e-mail (one contact opted out) and every unsubscribe"
    unsubscribed = {email for (email,) in warehouse.query("select email from staging.stg_marketo__unsubscribes")}
    assert {"cr@example.com", "tab@example.com", "nl@example.com", "nullid@example.com"} <= unsubscribed

    result = checks.audience_only_opted_in(warehouse=WarehouseResource(duckdb_path=str(path)))
    assert result.passed, result.metadata


def test_a_signup_of_a_person_opted_out_in_the_crm_is_followed_by_their_opt_out(built, tmp_path, monkeypatch):
    """The signup path applies the same consent as the user audience: profile update, opt-out, then the event."""
    from devtools.iterable_emulator import IterableEmulator
    from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, TRACK_BULK

    path = copy_warehouse(built, tmp_path / "warehouse.duckdb").path
    landing = tmp_path / "landing"
    with IterableEmulator(api_key=API_KEY) as emulator:
        monkeypatch.setenv("LANDING_DIR", str(landing))
        land(landing, "trial_signups", "t.jsonl", [event("s-1", SHARED), event("s-2", "kept@example.com")])
        assert all(result.success for result in run_sensor_and_jobs(live_resources(path, emulator)))

        assert emulator.unsubscribed == {SHARED: {GITLAB_MARKETING}}, "only the opted-out person is opted out"
        assert {SHARED, "kept@example.com"} <= set(emulator.users)
        assert sorted(e["email"] for e in emulator.events.values()) == sorted([SHARED, "kept@example.com"])
        shared = [path for path, body in emulator.received_bodies if SHARED in str(body)]
        assert shared == [BULK_UPDATE_USERS, f"/api/subscriptions/messageType/{GITLAB_MARKETING}", TRACK_BULK]
