"""Consent first in the Iterable audience: an e-mail any opted-out contact carries is never sent, built by real dbt."""

from __future__ import annotations

from datetime import datetime

from marketing_pipelines.defs.iterable import checks
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.conftest import build_dbt, load_raw_rows

AS_OF = "2026-11-20"
SHARED = "shared@example.com"


def person(person_id: int, email: str, updated_at: str, **fields: object) -> dict[str, object]:
    return {
        "person_id": person_id,
        "email": email,
        "record_type": "lead",
        "status": "Inquiry",
        "initial_source": "Demo",
        "person_score": 10,
        "created_at": datetime.fromisoformat("2025-01-01"),
        "updated_at": datetime.fromisoformat(updated_at),
        **fields,
    }


def user(user_id: int, email: str) -> dict[str, object]:
    return {"user_id": user_id, "email": email, "created_at": datetime.fromisoformat("2026-11-01T09:30:00")}


RAW_ROWS = {
    "gitlab_users": [user(1, SHARED), user(2, "kept@example.com")],
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
        {"event_id": "u-1", "email": "old.address@example.com", "unsubscribed_at": datetime.fromisoformat("2025-04-01")}
    ],
}


def test_an_email_any_opted_out_contact_carries_is_left_out_and_the_check_passes(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    load_raw_rows(warehouse, RAW_ROWS)
    build_dbt(path, as_of=AS_OF)

    opted_in = dict(
        warehouse.query("select person_id, is_opted_in from marts.marketing_contacts where person_id in (1, 3)")
    )
    assert opted_in == {1: False, 3: True}, "the two CRM records of one e-mail disagree on consent"
    emails = {email for (email,) in warehouse.query("select email from audiences.iterable_user_audience")}
    assert emails == {"kept@example.com"}, "the shared e-mail is left out: one of its contacts opted out"

    result = checks.audience_only_opted_in(warehouse=WarehouseResource(duckdb_path=str(path)))
    assert result.passed, result.metadata
