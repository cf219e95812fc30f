"""Customer Programs recipients (seeds 002/004): dbt built for real on hand-made raw rows, the checks on the result,
and the built audiences pushed to the Gainsight emulator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from marketing_pipelines.clients.gainsight import GainsightClient
from marketing_pipelines.defs.gainsight import checks
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.devtools.gainsight_emulator import GainsightEmulator
from marketing_pipelines.sync import run_sync
from marketing_pipelines.sync.gainsight import (
    COMPANIES,
    COMPANY_AUDIENCE,
    PEOPLE,
    PERSON_AUDIENCE,
    GainsightDestination,
)
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.conftest import build_dbt, load_raw_rows, run_dbt

AS_OF = "2026-11-20"
NAMESPACE = 10_000_003


def account(account_id: int, **overrides) -> dict:
    row = {
        "account_id": account_id,
        "account_name": f"Account {account_id}",
        "carr": "25000.00",
        "technical_account_manager": None,
        "account_owner_team": "EMEA",
        "products_purchased": "Self-Managed - Premium",
        "deployment_type": "Self-Managed",
        "support_level": "Standard",
        "namespace_id": None,
        "created_at": "2025-06-01 09:00:00",
        "renewal_date": "2027-06-01",
    }
    return {**row, **overrides}


def contact(account_id: int, person_id: int, role: str, email: str | None = "") -> dict:
    email = f"p{person_id}@example.com" if email == "" else email
    return {"account_id": account_id, "person_id": person_id, "email": email, "gitlab_role": role}


RAW = {
    "cs_accounts": [
        account(1),  # two GitLab Admins, a Sold-To and a Billing contact: only the Admins
        account(2, created_at="2026-10-21 10:00:00", renewal_date="2027-10-21"),  # web direct: Sold-To fallback
        account(3, deployment_type="SaaS", namespace_id=NAMESPACE, renewal_date="2027-01-19"),  # SaaS, renewing
        account(4, technical_account_manager="Tia Tam"),  # TAM-managed
        account(5),  # no Admin and two Sold-To contacts
        account(6, carr="-10"),
        account(7, carr="lots"),
        account(8, deployment_type="On-Prem"),
        account(9),  # an Admin without an e-mail address beside a good one
        account(10),  # no contacts at all
    ],
    "cs_contacts": [
        contact(1, 101, "GitLab Admin"),
        contact(1, 102, "GitLab Admin"),
        contact(1, 103, "Sold-To"),
        contact(1, 104, "Billing"),
        contact(2, 201, "Sold-To"),
        contact(2, 202, "Technical Contact"),
        contact(3, 301, "GitLab Admin", "owner1@example.com"),  # also an Owner of the namespace: listed once
        contact(4, 401, "GitLab Admin"),
        contact(5, 501, "Sold-To"),
        contact(5, 502, "Sold-To"),
        contact(6, 601, "GitLab Admin"),
        contact(7, 701, "GitLab Admin"),
        contact(8, 801, "GitLab Admin"),
        contact(9, 901, "GitLab Admin", None),
        contact(9, 902, "GitLab Admin"),
    ],
    "gitlab_users": [
        {"user_id": uid, "email": f"{name}@example.com", "created_at": "2025-01-01 00:00:00"}
        for uid, name in ((1, "owner1"), (2, "owner2"), (3, "maintainer3"), (4, "developer4"), (5, "guest5"))
    ],
    "gitlab_members": [
        {"namespace_id": NAMESPACE, "user_id": uid, "access_level": level}
        for uid, level in ((1, 50), (2, 50), (3, 40), (4, 30), (5, 10))
    ],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(tmp_path_factory.mktemp("programs") / "warehouse.duckdb")
    load_raw_rows(warehouse, RAW)
    build_dbt(warehouse.path, as_of=AS_OF)
    return warehouse


def recipients(warehouse: DuckDBWarehouse, account_id: int) -> set[tuple]:
    rows = warehouse.query(
        "select coalesce(email, 'NULL'), recipient_reason, receives_surveys, program, skip_reason "
        "from audiences.gainsight_program_recipients where account_id = ?",
        [account_id],
    )
    return set(rows)


def test_an_account_with_admins_sends_to_its_admins_only(built):
    assert recipients(built, 1) == {
        ("p101@example.com", "gitlab_admin", True, "enablement", None),
        ("p102@example.com", "gitlab_admin", True, "enablement", None),
    }


def test_without_an_admin_the_sold_to_contact_gets_programs_but_no_surveys(built):
    assert recipients(built, 2) == {("p201@example.com", "sold_to_fallback", False, "onboarding", None)}


def test_a_saas_account_adds_owners_and_maintainers_but_not_developers(built):
    assert recipients(built, 3) == {
        ("owner1@example.com", "gitlab_admin", True, "retention", None),  # Admin contact and Owner: listed once
        ("owner2@example.com", "saas_owner", False, "retention", None),
        ("maintainer3@example.com", "saas_maintainer", False, "retention", None),
    }


def test_tam_managed_accounts_are_excluded_unless_the_setting_says_otherwise(built, tmp_path):
    assert recipients(built, 4) == set()
    assert built.query("select count(*) from audiences.gainsight_program_companies where account_id = 4") == [(0,)]
    included = DuckDBWarehouse(tmp_path / "with-tam.duckdb")
    shutil.copy(built.path, included.path)
    variables = {"as_of_date": AS_OF, "gainsight_include_tam_accounts": True}
    run_dbt(["run", "--select", "int_cs_program_accounts+", "--vars", json.dumps(variables)], included.path)
    assert recipients(included, 4) == {("p401@example.com", "gitlab_admin", True, "enablement", None)}


def test_bad_input_rows_carry_a_skip_reason_that_names_the_problem(built):
    skipped = dict(
        built.query(
            "select coalesce(email, 'NULL'), skip_reason from audiences.gainsight_program_recipients "
            "where skip_reason is not null"
        )
    )
    assert skipped == {
        "p501@example.com": "ambiguous Sold-To fallback: the account has 2 Sold-To contacts and no GitLab Admin",
        "p502@example.com": "ambiguous Sold-To fallback: the account has 2 Sold-To contacts and no GitLab Admin",
        "p601@example.com": "CARR is negative: -10",
        "p701@example.com": "CARR is not a number: lots",
        "p801@example.com": "unknown deployment type: On-Prem",
        "NULL": "contact has no e-mail address",
    }
    assert recipients(built, 9) >= {("p902@example.com", "gitlab_admin", True, "enablement", None)}


def test_the_rule_checks_pass_on_the_model_and_the_missing_recipient_is_named(built):
    resource = WarehouseResource(duckdb_path=str(built.path))
    assert checks.sold_to_never_surveyed(warehouse=resource).passed
    assert checks.recipient_roles_valid(warehouse=resource).passed
    warning = checks.every_program_account_has_a_recipient(warehouse=resource)
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert warning.metadata["sample_records"].value == [
        {"account_id": 10, "account_name": "Account 10", "value": "enablement"}
    ]


@pytest.fixture
def corrupted(built: DuckDBWarehouse, tmp_path: Path) -> tuple[DuckDBWarehouse, WarehouseResource]:
    copy = DuckDBWarehouse(tmp_path / "corrupted.duckdb")
    shutil.copy(built.path, copy.path)
    return copy, WarehouseResource(duckdb_path=str(copy.path))


def test_a_surveyed_sold_to_contact_fails_the_blocking_check_and_is_named(corrupted):
    warehouse, resource = corrupted
    warehouse.execute("update audiences.gainsight_program_recipients set receives_surveys = true")
    result = checks.sold_to_never_surveyed(warehouse=resource)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    named = {(r["person_id"], r["email"]) for r in result.metadata["sample_records"].value}
    assert named == {(201, "p***@example.com"), (501, "p***@example.com"), (502, "p***@example.com")}


def test_a_sold_to_listed_as_saas_owner_with_surveys_still_fails(corrupted):
    warehouse, resource = corrupted
    warehouse.execute(
        "update audiences.gainsight_program_recipients set recipient_reason = 'saas_owner', role = 'Owner', "
        "receives_surveys = true where person_id = 201"
    )
    assert not checks.sold_to_never_surveyed(warehouse=resource).passed


def test_an_unknown_reason_or_a_mismatched_role_fails_the_roles_check(corrupted):
    warehouse, resource = corrupted
    warehouse.execute(
        "update audiences.gainsight_program_recipients set recipient_reason = 'marketing_lead' where person_id = 101;"
        "update audiences.gainsight_program_recipients set role = 'Developer' where email = 'owner2@example.com';"
        "update audiences.gainsight_program_recipients set recipient_reason = 'sold_to_fallback', role = 'Sold-To' "
        "where person_id = 102"
    )
    result = checks.recipient_roles_valid(warehouse=resource)
    assert not result.passed and result.metadata["failing_records"].value == 3
    assert result.metadata["values"].value == {
        "marketing_lead as GitLab Admin": 1,
        "saas_owner as Developer": 1,
        "sold_to_fallback as Sold-To": 1,
    }


def test_the_built_audiences_reach_the_emulator_and_bad_rows_only_reach_the_rejections(built, tmp_path):
    warehouse = DuckDBWarehouse(tmp_path / "push.duckdb")
    shutil.copy(built.path, warehouse.path)
    with GainsightEmulator(access_key="k", calls_per_window=10, window_seconds=1) as emu:
        client = GainsightClient("k", emu.base_url, calls_per_window=10, window_seconds=1)
        reports = [
            run_sync(warehouse, audience, GainsightDestination(client, target), dry_run=False, run_id="r")
            for audience, target in ((COMPANY_AUDIENCE, COMPANIES), (PERSON_AUDIENCE, PEOPLE))
        ]
    assert set(emu.companies) == {f"Account {i}" for i in (1, 2, 3, 5, 9, 10)}
    assert emu.companies["Account 3"]["Customer_Program__gc"] == "retention"
    assert set(emu.people) == {
        "p101@example.com", "p102@example.com", "p201@example.com", "owner1@example.com", "owner2@example.com",
        "maintainer3@example.com", "p902@example.com",
    }  # fmt: skip
    assert emu.company_people[("p201@example.com", "Account 2")]["Receives_Surveys__gc"] is False
    assert [(r.accepted, r.rejected) for r in reports] == [(6, 3), (7, 6)]
    reasons = warehouse.query("select reason from ops.sync_rejections where destination = 'gainsight_people'")
    assert {"invalid record: contact has no e-mail address", "invalid record: CARR is not a number: lots"} <= {
        reason for (reason,) in reasons
    }


def test_the_sync_assets_push_live_with_the_resource_and_report_per_program(built, tmp_path):
    from marketing_pipelines.defs.gainsight.assets import gainsight_company_sync, gainsight_person_sync
    from marketing_pipelines.defs.gainsight.resources import GainsightResource

    path = tmp_path / "assets.duckdb"
    shutil.copy(built.path, path)
    with GainsightEmulator(access_key="k", calls_per_window=10, window_seconds=1) as emu:
        result = dg.materialize(
            [gainsight_company_sync, gainsight_person_sync],
            resources={
                "warehouse": WarehouseResource(duckdb_path=str(path)),
                "gainsight": GainsightResource(access_key="k", base_url=emu.base_url, window_seconds=1),
            },
        )
    assert result.success
    person = result.asset_materializations_for_node("gainsight_person_sync")[0].metadata
    assert person["mode"].value == "live" and person["accepted"].value == len(emu.people) == 7
    assert person["by_program"].value == {
        "enablement": {"rows": 9, "skipped": 6},
        "onboarding": {"rows": 1, "skipped": 0},
        "retention": {"rows": 3, "skipped": 0},
    }
