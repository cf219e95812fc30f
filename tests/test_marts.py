"""Model-level behaviour of the marts, on hand-made raw rows built by the real dbt project."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.dbt import build_dbt
from tests.support.raw import crm_person, load_raw_rows

AS_OF = "2026-11-20"


def person(person_id: int, updated_at: str, **fields: object) -> dict[str, object]:
    """A lead in Inquiry from a Demo, created at the start of 2025, with 10 points (as a number)."""
    defaults = {"initial_source": "Demo", "person_score": 10, "created_at": datetime.fromisoformat("2025-01-01")}
    return crm_person(person_id, datetime.fromisoformat(updated_at), **{**defaults, **fields})


RAW_ROWS = {
    "gitlab_users": [
        {
            "user_id": 1,
            "email": "New.User@Example.com",
            "setup_for_company": True,
            "created_at": datetime.fromisoformat("2026-11-01T09:30:00"),
        },
        {
            "user_id": 2,
            "email": "old.user@example.com",
            "setup_for_company": False,
            "created_at": datetime.fromisoformat("2026-08-01T09:30:00"),
        },
    ],
    "gitlab_namespaces": [
        {
            "namespace_id": 10,
            "namespace_name": "acme",
            "creator_user_id": 1,
            "created_at": datetime.fromisoformat("2026-11-01T10:00:00"),
            "plan_title": "Ultimate Trial",
            "plan_is_paid": False,
            "trial_start_date": datetime.fromisoformat("2026-11-01").date(),
            "trial_end_date": datetime.fromisoformat("2026-12-01").date(),
            "is_setup_for_company": True,
            "list_of_stages": "create,verify,plan",
        },
        {
            "namespace_id": 11,
            "namespace_name": "legacy",
            "creator_user_id": 2,
            "created_at": datetime.fromisoformat("2026-08-01T10:00:00"),
            "plan_title": "Premium",
            "plan_is_paid": True,
            "is_setup_for_company": False,
        },
    ],
    "gitlab_members": [
        {"namespace_id": 10, "user_id": 1, "access_level": 50},
        {"namespace_id": 11, "user_id": 1, "access_level": 30},
        {"namespace_id": 11, "user_id": 2, "access_level": 50},
    ],
    "crm_persons": [
        person(1, "2025-02-01", person_score=100),
        person(2, "2025-02-01", person_score=99),
        # Person 3 (older, Webcast) was merged into person 4 (newer, Demo).
        person(3, "2025-01-01", initial_source="Webcast"),
        person(3, "2025-07-01", initial_source="Webcast", merged_into_person_id=4),
        person(4, "2025-06-01", initial_source="Demo"),
        person(5, "2025-02-01", status="Working"),
        person(6, "2025-02-01", initial_source="Linkedin Ads"),
        person(7, "2025-02-01", initial_source=" trial - gitlab.com "),
        person(8, "2025-02-01"),
    ],
    "marketo_unsubscribes": [
        {"event_id": "u-1", "email": "PERSON8@example.com", "unsubscribed_at": datetime.fromisoformat("2025-03-01")},
    ],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[DuckDBWarehouse, str]:
    path: Path = tmp_path_factory.mktemp("marts") / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path)
    load_raw_rows(warehouse, RAW_ROWS)
    result = build_dbt(path, as_of=AS_OF)
    return warehouse, result.stdout


def contact(warehouse: DuckDBWarehouse, person_id: int) -> dict[str, object]:
    frame = warehouse.query_df("select * from marts.marketing_contacts where person_id = ?", [person_id])
    assert len(frame) == 1, f"expected one contact row for person {person_id}, got {len(frame)}"
    return frame.iloc[0].to_dict()


def test_two_month_window_keeps_a_new_user_and_drops_an_old_one(built):
    warehouse, _ = built
    emails = [row[0] for row in warehouse.query("select email from marts.marketing_contact_namespace_detail")]
    assert emails == ["new.user@example.com"]


def test_user_in_two_namespaces_gets_both_with_access_level_names(built):
    warehouse, _ = built
    ((count, detail),) = warehouse.query(
        "select namespace_count, namespace_detail from marts.marketing_contact_namespace_detail"
    )
    namespaces = json.loads(detail)
    assert count == 2
    assert [(n["NAMESPACE_ID"], n["USER_ACCESS_LEVEL"], n["USER_ACCESS_LEVEL_NAME"]) for n in namespaces] == [
        (10, 50, "Owner"),
        (11, 30, "Developer"),
    ]
    trial = namespaces[0]
    assert trial["ACTIVE_STAGE_COUNT"] == 3
    assert trial["IS_ACTIVE_TRIAL"] is True
    assert trial["GITLAB_PLAN_TITLE"] == "Ultimate Trial"
    assert trial["CURRENT_MEMBER_COUNT"] == 1
    assert namespaces[1]["CURRENT_MEMBER_COUNT"] == 2
    assert namespaces[1]["IS_ACTIVE_TRIAL"] is False


def test_namespace_objects_carry_every_namespace_field(built):
    warehouse, _ = built
    ((detail,),) = warehouse.query("select namespace_detail from marts.marketing_contact_namespace_detail")
    assert set(json.loads(detail)[0]) == {
        "ACTIVE_STAGE_COUNT",
        "CREATED_AT",
        "CREATOR_USER_ID",
        "CURRENT_MEMBER_COUNT",
        "GITLAB_PLAN_IS_PAID",
        "GITLAB_PLAN_TITLE",
        "GLM_CONTENT",
        "GLM_SOURCE",
        "IS_ACTIVE_TRIAL",
        "IS_IMPACTED_BY_USER_LIMIT",
        "IS_NAMESPACE_PQL",
        "IS_SETUP_FOR_COMPANY",
        "LIST_OF_STAGES",
        "NAMESPACE_ID",
        "TRIAL_START_DATE",
        "USER_ACCESS_LEVEL",
        "USER_ACCESS_LEVEL_NAME",
        "USER_ID",
    }


def test_is_mql_flips_at_exactly_100_points(built):
    warehouse, _ = built
    assert contact(warehouse, 1)["is_mql"] is True
    assert contact(warehouse, 2)["is_mql"] is False


def test_merged_person_appears_once_with_the_oldest_initial_source(built):
    warehouse, _ = built
    assert warehouse.query("select count(*) from marts.marketing_contacts where person_id = 3") == [(0,)]
    survivor = contact(warehouse, 4)
    assert survivor["merged_record_count"] == 2
    assert survivor["initial_source"] == "Webcast"


def test_unknown_lead_status_stays_out_of_the_mart(built):
    warehouse, _ = built
    assert contact(warehouse, 5)["lead_status"] is None


def test_unknown_initial_source_never_reaches_the_mart(built):
    warehouse, _ = built
    assert contact(warehouse, 6)["initial_source"] is None


def test_initial_source_with_stray_case_and_whitespace_maps_to_canonical_value(built):
    warehouse, _ = built
    row = contact(warehouse, 7)
    assert row["initial_source"] == "Trial - GitLab.com"
    assert row["initial_source_bucket"] == "trial"


def test_unsubscribe_opts_the_person_out(built):
    warehouse, _ = built
    assert contact(warehouse, 8)["is_opted_in"] is False
    assert contact(warehouse, 1)["is_opted_in"] is True


def test_seeds_hold_every_initial_source_and_lead_status(built):
    warehouse, _ = built
    assert warehouse.query("select count(*) from marts.dim_initial_source") == [(55,)]
    assert warehouse.query("select count(*) from marts.dim_lead_status") == [(10,)]
