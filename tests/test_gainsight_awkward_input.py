"""Customer Programs on awkward source data, dbt built for real and pushed to the Gainsight emulator: two accounts with
one name, CARR texts that are almost amounts, GitLab Admins without a usable e-mail address, roles and TAMs spelled
in other ways."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from marketing_pipelines.defs.gainsight import checks
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.dbt import build_from_raw
from tests.support.gainsight import AS_OF, account, contact, corrupted_copy, materialize_syncs, named, recipients

FULLWIDTH_5000 = "\uff15\uff10\uff10\uff10"
#: CARR text -> (CARR of the company, `carr_problem`), one account each (ids from 20), each with a GitLab Admin.
CARR_TEXTS: dict[str, tuple[str | None, str | None]] = {
    "1e3": (None, "CARR is not an amount: 1e3"),
    "1E2": (None, "CARR is not an amount: 1E2"),
    "1_000": (None, "CARR is not an amount: 1_000"),
    "1e-3": (None, "CARR is not an amount: 1e-3"),
    "-0.004": (None, "CARR is not an amount: -0.004"),
    "49999.995": (None, "CARR is not an amount: 49999.995"),  # never rounded up across the Scale threshold
    "1,234.50": (None, "CARR is not an amount: 1,234.50"),
    "$100": (None, "CARR is not an amount: $100"),
    "+5": (None, "CARR is not an amount: +5"),
    "12.": (None, "CARR is not an amount: 12."),
    "12345678901234567": (None, "CARR is not an amount: 12345678901234567"),
    FULLWIDTH_5000: (None, f"CARR is not an amount: {FULLWIDTH_5000}"),
    "-5": (None, "CARR is negative: -5"),
    "-0.01": (None, "CARR is negative: -0.01"),
    "\t500\n": ("500.00", None),
    " -0 ": ("0.00", None),
    "12.5": ("12.50", None),
    "50000": ("50000.00", None),
    "9999999999999999.99": ("9999999999999999.99", None),
    "   ": (None, None),  # only whitespace: a missing CARR, not a problem
    "\t\n": (None, None),
}
CARR_ACCOUNTS = {20 + i: text for i, text in enumerate(CARR_TEXTS)}

RAW = {
    "cs_accounts": [
        account(1, account_name="Acme", carr="900000.00"),
        account(2, account_name="Acme", carr="1000.00"),  # another customer of the same name
        account(3),  # roles spelled otherwise: an Admin and a Sold-To
        account(4),  # only a Sold-To, spelled SOLD_TO
        account(5, technical_account_manager="\t"),  # a tab is no TAM
        account(6, carr="60000", technical_account_manager="\n \r"),
        account(7),  # the only Admin has no e-mail address
        account(8),  # the only Admin's e-mail is blank
        account(9),  # the only Admin's e-mail is not an address
        account(10),  # the only Admin has no e-mail address, and there is no Sold-To
        *(account(account_id, carr=text) for account_id, text in CARR_ACCOUNTS.items()),
    ],
    "cs_contacts": [
        contact(1, 11, "GitLab Admin", "shared@example.com"),
        contact(2, 21, "Sold-To", "shared@example.com"),
        contact(3, 31, "Gitlab admin"),
        contact(3, 32, " sold-to "),
        contact(4, 41, "SOLD_TO"),
        contact(5, 51, "GitLab Admin"),
        contact(6, 61, "GitLab Admin"),
        contact(7, 71, "GitLab Admin", None),
        contact(7, 72, "Sold-To"),
        contact(8, 81, "GitLab Admin", "  "),
        contact(8, 82, "Sold-To"),
        contact(9, 91, "GitLab Admin", "not an address"),
        contact(9, 92, "Sold-To"),
        contact(10, 101, "GitLab Admin", None),
        *(contact(account_id, 1000 + account_id, "GitLab Admin") for account_id in CARR_ACCOUNTS),
    ],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> DuckDBWarehouse:
    return build_from_raw(tmp_path_factory.mktemp("awkward") / "warehouse.duckdb", RAW, as_of=AS_OF)


@pytest.fixture(scope="module")
def resource(built: DuckDBWarehouse) -> WarehouseResource:
    return WarehouseResource(duckdb_path=str(built.path))


@pytest.fixture
def corrupted(built: DuckDBWarehouse, tmp_path: Path) -> tuple[DuckDBWarehouse, WarehouseResource]:
    """A copy of the built warehouse to change."""
    return corrupted_copy(built, tmp_path)


def test_carr_is_an_amount_only_when_written_as_plain_digits_with_at_most_two_decimals(built, resource):
    rows = built.query(
        "select account_id, cast(carr as varchar), carr_problem, segment from audiences.gainsight_program_companies "
        "where account_id >= 20"
    )
    found = {CARR_ACCOUNTS[account_id]: (carr, problem) for account_id, carr, problem, _ in rows}
    assert found == CARR_TEXTS
    scale = {CARR_ACCOUNTS[account_id] for account_id, _, _, segment in rows if segment == "Scale"}
    assert scale == {"50000", "9999999999999999.99"}, "49999.995 is not rounded into Scale"
    warning = checks.account_carr_not_an_amount(warehouse=resource)
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    texts = {text for text, (_, problem) in CARR_TEXTS.items() if problem}
    assert {CARR_ACCOUNTS[a]: v for a, v in named(warning).items()} == {text: text for text in texts}
    for check in (checks.company_carr_matches_source, checks.every_customer_account_in_a_program):
        assert check(warehouse=resource).passed, check.name


def test_the_python_parser_of_the_carr_check_follows_the_same_rule():
    for text, (carr, _) in CARR_TEXTS.items():
        assert checks.source_carr(text) == (None if carr is None else Decimal(carr)), text
    assert checks.source_carr(None) is None and checks.source_carr("٣٤٥") is None and checks.source_carr("NaN") is None


def test_a_lenient_cast_fails_the_carr_check_which_parses_the_source_itself(corrupted):
    warehouse, resource = corrupted
    ids = {text: account_id for account_id, text in CARR_ACCOUNTS.items()}
    warehouse.execute(  # what try_cast to decimal(18,2) made of these texts
        f"update audiences.gainsight_program_companies set carr = 1000 where account_id = {ids['1e3']};"
        f"update audiences.gainsight_program_companies set carr = 50000 where account_id = {ids['49999.995']};"
        f"update audiences.gainsight_program_companies set carr = 0 where account_id = {ids['-0.004']}"
    )
    result = checks.company_carr_matches_source(warehouse=resource)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert named(result) == {
        ids["1e3"]: "1000.00 instead of NULL (source '1e3')",
        ids["-0.004"]: "0.00 instead of NULL (source '-0.004')",
        ids["49999.995"]: "50000.00 instead of NULL (source '49999.995')",
    }


def test_roles_are_recognised_however_they_are_spelled(built, resource):
    assert recipients(built, 3) == {("p31@example.com", "gitlab_admin", True, "enablement", None)}
    assert recipients(built, 4) == {("p41@example.com", "sold_to_fallback", False, "enablement", None)}
    roles = dict(built.query("select person_id, gitlab_role from staging.stg_cs__contacts where account_id in (3, 4)"))
    assert roles == {31: "GitLab Admin", 32: "Sold-To", 41: "Sold-To"}
    for check in (checks.sold_to_never_surveyed, checks.recipient_roles_valid):
        assert check(warehouse=resource).passed, check.name


def test_a_tam_of_only_whitespace_is_no_tam(built):
    segments = dict(built.query("select account_id, segment from audiences.gainsight_program_companies"))
    assert (segments[5], segments[6]) == ("Tech Touch", "Scale")


def test_without_an_admin_that_has_an_e_mail_address_the_sold_to_contact_receives(built, resource):
    assert recipients(built, 7) == {
        ("NULL", "gitlab_admin", True, "enablement", "contact has no e-mail address"),
        ("p72@example.com", "sold_to_fallback", False, "enablement", None),
    }
    assert recipients(built, 8) == {
        ("NULL", "gitlab_admin", True, "enablement", "contact has no e-mail address"),
        ("p82@example.com", "sold_to_fallback", False, "enablement", None),
    }
    assert recipients(built, 9) == {
        ("not an address", "gitlab_admin", True, "enablement", "contact e-mail is not an address"),
        ("p92@example.com", "sold_to_fallback", False, "enablement", None),
    }
    for check in (checks.sold_to_never_surveyed, checks.recipient_roles_valid):
        assert check(warehouse=resource).passed, check.name
    warning = checks.every_program_account_has_a_recipient(warehouse=resource)
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert named(warning) == {10: "no recipient with a usable e-mail address"}


def test_a_sold_to_fallback_beside_an_admin_with_an_e_mail_fails_the_roles_check(corrupted):
    warehouse, resource = corrupted
    warehouse.execute(  # account 3's Sold-To listed although its Admin can be written to
        "insert into audiences.gainsight_program_recipients by name select '3:p32@example.com' as recipient_key, "
        "3 as account_id, 32 as person_id, 'p32@example.com' as email, 'Sold-To' as role, "
        "'sold_to_fallback' as recipient_reason, false as receives_surveys, 'enablement' as program, "
        "'Tech Touch' as segment"
    )
    result = checks.recipient_roles_valid(warehouse=resource)
    assert not result.passed and result.metadata["values"].value == {"sold_to_fallback as Sold-To": 1}


def test_accounts_sharing_a_name_are_two_companies_in_gainsight_each_with_its_people(built, tmp_path):
    emu, result = materialize_syncs(built, tmp_path / "push.duckdb")
    assert result.success
    acme = {c["GitLab_Account_ID__gc"]: str(c["Arr"]) for c in emu.find_companies(Name="Acme")}
    assert acme == {1: "900000.00", 2: "1000.00"}
    assert len(emu.companies) == 10 + len(CARR_ACCOUNTS)
    admin = emu.association("shared@example.com", GitLab_Account_ID__gc=1)
    sold_to = emu.association("shared@example.com", GitLab_Account_ID__gc=2)
    assert (admin["Recipient_Reason__gc"], admin["Receives_Surveys__gc"]) == ("gitlab_admin", True)
    assert (sold_to["Recipient_Reason__gc"], sold_to["Receives_Surveys__gc"]) == ("sold_to_fallback", False)
    assert emu.company(GitLab_Account_ID__gc=5)["Customer_Segment__gc"] == "Tech Touch"
    assert {"p41@example.com", "p72@example.com", "p82@example.com", "p92@example.com"} <= set(emu.people)
