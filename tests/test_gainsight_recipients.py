"""Customer Programs (Customer Programs handbook): dbt built for real on hand-made raw rows, the checks on the result
(and on corrupted copies, so each can fail), and the built audiences pushed to the Gainsight emulator."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from devtools.gainsight_emulator import GainsightEmulator
from marketing_pipelines.clients.gainsight import COMPANY_UPSERT, GainsightClient
from marketing_pipelines.defs.gainsight import checks
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.sync import Api, run_sync
from marketing_pipelines.sync.gainsight import COMPANIES, PEOPLE
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.dbt import build_from_raw
from tests.support.gainsight import (
    AS_OF,
    account,
    company,
    contact,
    corrupted_copy,
    materialize_syncs,
    named,
    recipients,
)
from tests.support.metadata import sample_records

NAMESPACE = 10_000_003
EXACT_CARR = "972765.41"  # a float32 turns it into 972765.4375
LARGEST_CARR = "9999999999999999.99"  # the largest decimal(18,2); a float64 turns it into 1e16


RAW = {
    "cs_accounts": [
        account(1),  # two GitLab Admins, a Sold-To and a Billing contact: only the Admins
        account(2, created_at="2026-10-21 10:00:00", renewal_date="2027-10-21"),  # web direct: Sold-To fallback
        account(3, deployment_type="SaaS", namespace_id=NAMESPACE, renewal_date="2027-01-19"),  # SaaS, renewing
        account(4, technical_account_manager="Tia Tam"),  # TAM-managed: CSM-Managed
        account(5),  # no Admin and two Sold-To contacts: both receive
        account(6, carr="-10"),
        account(7, carr="lots"),
        account(8, deployment_type="On-Prem"),
        account(9),  # an Admin without an e-mail address beside a good one
        account(10),  # no contacts at all
        account(11, carr=EXACT_CARR),
        account(12, carr="50000.00"),  # exactly the Scale threshold
        account(13, carr="49999.99"),  # a cent below it
        account(14, carr=LARGEST_CARR),
        account(15, carr=" 60000 ", technical_account_manager="  "),  # a blank TAM is no TAM
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
        contact(9, None, "GitLab Admin", None),  # neither person id nor e-mail: skipped, never blocks the account
        *(contact(i, 100 * i + 1, "GitLab Admin") for i in range(11, 16)),
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
ALL_ACCOUNTS = {row["account_id"] for row in RAW["cs_accounts"]}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> DuckDBWarehouse:
    return build_from_raw(tmp_path_factory.mktemp("programs") / "warehouse.duckdb", RAW, as_of=AS_OF)


@pytest.fixture(scope="module")
def resource(built: DuckDBWarehouse) -> WarehouseResource:
    return WarehouseResource(duckdb_path=str(built.path))


def test_an_account_with_admins_sends_to_its_admins_only(built):
    assert recipients(built, 1) == {
        ("p101@example.com", "gitlab_admin", True, "enablement", None),
        ("p102@example.com", "gitlab_admin", True, "enablement", None),
    }


def test_without_an_admin_the_sold_to_contact_gets_programs_but_no_surveys(built):
    assert recipients(built, 2) == {("p201@example.com", "sold_to_fallback", False, "onboarding", None)}


def test_two_sold_to_contacts_without_an_admin_both_receive_never_surveyed_and_the_account_is_named(built, resource):
    assert recipients(built, 5) == {
        ("p501@example.com", "sold_to_fallback", False, "enablement", None),
        ("p502@example.com", "sold_to_fallback", False, "enablement", None),
    }
    warning = checks.account_has_several_sold_to_contacts(warehouse=resource)
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert named(warning) == {5: "2 Sold-To contacts, no GitLab Admin with an e-mail address"}  # not 1: it has Admins


def test_a_saas_account_adds_owners_and_maintainers_but_not_developers(built):
    assert recipients(built, 3) == {
        ("owner1@example.com", "gitlab_admin", True, "retention", None),  # Admin contact and Owner: listed once
        ("owner2@example.com", "saas_owner", False, "retention", None),
        ("maintainer3@example.com", "saas_maintainer", False, "retention", None),
    }


def test_every_customer_account_is_in_a_program_with_its_segment(built):
    segments = dict(built.query("select account_id, segment from audiences.gainsight_program_companies"))
    assert set(segments) == ALL_ACCOUNTS
    assert segments == {
        **dict.fromkeys(ALL_ACCOUNTS, "Tech Touch"),
        4: "CSM-Managed",  # a TAM is assigned
        11: "Scale",
        12: "Scale",  # CARR equal to the threshold
        13: "Tech Touch",  # a cent below it
        14: "Scale",
        15: "Scale",  # blank TAM
    }  # 6 (negative CARR), 7 (text CARR): Tech Touch
    assert recipients(built, 4) == {("p401@example.com", "gitlab_admin", True, "enablement", None)}
    assert company(built, 4, "technical_account_manager, skip_reason") == ("Tia Tam", None)


def test_carr_is_exact_and_a_bad_carr_is_left_out_without_stopping_the_account(built, resource):
    assert company(built, 11, "carr") == (Decimal(EXACT_CARR),)
    assert company(built, 14, "carr") == (Decimal(LARGEST_CARR),)
    assert company(built, 15, "carr") == (Decimal("60000.00"),)
    assert company(built, 6, "carr, carr_problem, skip_reason") == (None, "CARR is negative: -10", None)
    assert company(built, 7, "carr, carr_problem, skip_reason") == (None, "CARR is not an amount: lots", None)
    assert recipients(built, 7) == {("p701@example.com", "gitlab_admin", True, "enablement", None)}
    warning = checks.account_carr_not_an_amount(warehouse=resource)
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert named(warning) == {6: "-10", 7: "lots"}


def test_bad_input_rows_carry_a_skip_reason_that_names_the_problem(built):
    skipped = dict(
        built.query(
            "select coalesce(email, 'NULL'), skip_reason from audiences.gainsight_program_recipients "
            "where skip_reason is not null"
        )
    )
    assert skipped == {
        "p801@example.com": "unknown deployment type: On-Prem",
        "NULL": "contact has no e-mail address",
    }
    assert recipients(built, 9) >= {("p902@example.com", "gitlab_admin", True, "enablement", None)}


def test_the_blocking_checks_pass_on_the_model_and_the_missing_recipient_is_named(resource):
    for check in (
        checks.sold_to_never_surveyed,
        checks.recipient_roles_valid,
        checks.every_customer_account_in_a_program,
        checks.company_carr_matches_source,
    ):
        result = check(warehouse=resource)
        assert result.passed and result.severity == dg.AssetCheckSeverity.ERROR, check.name
    warning = checks.every_program_account_has_a_recipient(warehouse=resource)
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert sample_records(warning) == [
        {"account_id": 8, "account_name": "Account 8", "value": "account skipped: unknown deployment type: On-Prem"},
        {"account_id": 10, "account_name": "Account 10", "value": "no GitLab Admin or Sold-To contact"},
    ]


@pytest.fixture
def corrupted(built: DuckDBWarehouse, tmp_path: Path) -> tuple[DuckDBWarehouse, WarehouseResource]:
    return corrupted_copy(built, tmp_path)


def test_a_surveyed_sold_to_contact_fails_the_blocking_check_and_is_named(corrupted):
    warehouse, resource = corrupted
    warehouse.execute("update audiences.gainsight_program_recipients set receives_surveys = true")
    result = checks.sold_to_never_surveyed(warehouse=resource)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    named_people = {(r["person_id"], r["email"]) for r in sample_records(result)}
    assert named_people == {(201, "p***@example.com"), (501, "p***@example.com"), (502, "p***@example.com")}


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


def test_a_role_staging_does_not_confirm_fails_the_roles_check_even_when_the_row_looks_consistent(corrupted):
    warehouse, resource = corrupted
    warehouse.execute(  # the Developer (user 4) listed as an Owner; a Billing contact listed as a GitLab Admin
        "update audiences.gainsight_program_recipients set user_id = 4 where email = 'owner2@example.com';"
        "update audiences.gainsight_program_recipients set person_id = 104 where person_id = 102"
    )
    result = checks.recipient_roles_valid(warehouse=resource)
    assert not result.passed
    assert result.metadata["values"].value == {"saas_owner as Owner": 1, "gitlab_admin as GitLab Admin": 1}


def test_a_missing_account_or_a_wrong_segment_fails_the_blocking_program_check(corrupted):
    warehouse, resource = corrupted
    warehouse.execute(
        "delete from audiences.gainsight_program_companies where account_id = 10;"
        "update audiences.gainsight_program_companies set segment = 'Tech Touch' where account_id = 4;"
        "update audiences.gainsight_program_companies set segment = 'Scale' where account_id = 13;"
        "update audiences.gainsight_program_companies set segment = null where account_id = 11"
    )
    result = checks.every_customer_account_in_a_program(warehouse=resource)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert named(result) == {
        4: "Tech Touch instead of CSM-Managed",
        10: "not in a program (expected Tech Touch)",
        11: "no segment instead of Scale",
        13: "Scale instead of Tech Touch",
    }


def test_a_float_carr_fails_the_blocking_money_check(corrupted):
    warehouse, resource = corrupted
    warehouse.execute(  # the reported bug: CARR cast to a single-precision float on the way
        "create or replace table audiences.gainsight_program_companies as "
        "select * replace (cast(carr as float) as carr) from audiences.gainsight_program_companies;"
        "update audiences.gainsight_program_companies set carr = 0 where account_id = 6"
    )
    result = checks.company_carr_matches_source(warehouse=resource)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert named(result) == {
        6: "0.00 instead of NULL (source '-10')",  # a negative CARR is left out
        11: "972765.44 instead of 972765.41 (source '972765.41')",  # the float32 972765.4375, in cents
        14: "10000000272564224.00 instead of 9999999999999999.99 (source '9999999999999999.99')",  # float32
    }


def push(built: DuckDBWarehouse, path: Path) -> tuple[GainsightEmulator, list, DuckDBWarehouse]:
    warehouse = DuckDBWarehouse(path)
    shutil.copy(built.path, warehouse.path)
    with GainsightEmulator(access_key="k", calls_per_window=10, window_seconds=1) as emu:
        client = GainsightClient("k", emu.base_url, calls_per_window=10, window_seconds=1)
        reports = [run_sync(warehouse, destination, Api(client), run_id="r") for destination in (COMPANIES, PEOPLE)]
    return emu, reports, warehouse


def test_the_built_audiences_reach_the_emulator_and_bad_rows_only_reach_the_rejections(built, tmp_path):
    emu, reports, warehouse = push(built, tmp_path / "push.duckdb")
    assert {c["GitLab_Account_ID__gc"]: c["Name"] for c in emu.companies.values()} == {
        i: f"Account {i}" for i in ALL_ACCOUNTS - {8}
    }
    assert emu.company(GitLab_Account_ID__gc=3)["Customer_Program__gc"] == "retention"
    assert emu.company(GitLab_Account_ID__gc=4)["Customer_Segment__gc"] == "CSM-Managed"
    assert emu.company(GitLab_Account_ID__gc=7)["Arr"] is None
    assert emu.company(GitLab_Account_ID__gc=7)["Customer_Segment__gc"] == "Tech Touch"
    assert set(emu.people) == {
        "p101@example.com", "p102@example.com", "p201@example.com", "owner1@example.com", "owner2@example.com",
        "maintainer3@example.com", "p401@example.com", "p501@example.com", "p502@example.com", "p601@example.com",
        "p701@example.com", "p902@example.com", "p1101@example.com", "p1201@example.com", "p1301@example.com",
        "p1401@example.com", "p1501@example.com",
    }  # fmt: skip
    for sold_to in ("p201@example.com", "p501@example.com", "p502@example.com"):
        account_id = 2 if sold_to == "p201@example.com" else 5
        assert emu.association(sold_to, GitLab_Account_ID__gc=account_id)["Receives_Surveys__gc"] is False
    # 3 people rejected: the Admin without an e-mail, the contact with neither id nor e-mail, the On-Prem Admin
    assert [(r.accepted, r.rejected) for r in reports] == [(14, 1), (17, 3)]
    reasons = warehouse.query("select reason from ops.sync_rejections where destination = 'gainsight_people'")
    assert {reason for (reason,) in reasons} == {
        "invalid record: contact has no e-mail address",
        "invalid record: unknown deployment type: On-Prem",
    }


def test_carr_reaches_gainsight_with_exactly_its_digits(built, tmp_path):
    emu, _, _ = push(built, tmp_path / "exact.duckdb")
    arr_of = {c["GitLab_Account_ID__gc"]: c["Arr"] for c in emu.companies.values()}
    assert arr_of[11] == Decimal(EXACT_CARR)  # the emulator parses numbers as Decimal
    assert str(arr_of[11]) == EXACT_CARR and str(arr_of[14]) == LARGEST_CARR and str(arr_of[1]) == "25000.00"
    bodies = [body for path, body in emu.received_bodies if path == COMPANY_UPSERT]
    arr = {record["Name"]: record["Arr"] for body in bodies for record in body["records"]}
    assert arr["Account 11"] == Decimal(EXACT_CARR) and isinstance(arr["Account 11"], Decimal)


def test_the_sync_assets_push_live_with_the_resource_and_report_per_program(built, tmp_path):
    emu, result = materialize_syncs(built, tmp_path / "assets.duckdb")
    assert result.success
    person = result.asset_materializations_for_node("gainsight_person_sync")[0].metadata
    assert person["mode"].value == "live" and person["accepted"].value == len(emu.people) == 17
    assert person["by_segment"].value == {
        "CSM-Managed": {"rows": 1, "skipped": 0},
        "Scale": {"rows": 4, "skipped": 0},
        "Tech Touch": {"rows": 15, "skipped": 3},
    }
    assert person["by_program"].value == {
        "enablement": {"rows": 16, "skipped": 3},
        "onboarding": {"rows": 1, "skipped": 0},
        "retention": {"rows": 3, "skipped": 0},
    }
