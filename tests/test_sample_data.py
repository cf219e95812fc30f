"""Tests for the deterministic sample data generator, loader and CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from marketing_pipelines.sample_data import SampleData, generate, write_sample_data
from marketing_pipelines.sample_data.__main__ import main
from marketing_pipelines.sample_data.generator import (
    ACCESS_LEVELS,
    CASE_VARIANT_INITIAL_SOURCES,
    LEAD_STATUSES,
    TABLE_NAMES,
    UNKNOWN_INITIAL_SOURCES,
    UNKNOWN_STATUSES,
    VIOLATION_KINDS,
    load_initial_sources,
)
from marketing_pipelines.sample_data.loader import warehouse_is_empty
from marketing_pipelines.warehouse import DuckDBWarehouse

AS_OF = dt.date(2026, 11, 20)
USERS = 500

REQUIRED_COLUMNS = {
    "gitlab_users": {
        "user_id", "email", "first_name", "last_name", "company", "country", "state", "user_role",
        "employee_bucket", "signup_reason", "setup_for_company", "created_at",
    },
    "gitlab_namespaces": {
        "namespace_id", "namespace_name", "creator_user_id", "created_at", "plan_title", "plan_is_paid",
        "trial_start_date", "trial_end_date", "is_setup_for_company", "glm_source", "glm_content",
        "is_impacted_by_user_limit", "is_namespace_pql", "list_of_stages",
    },
    "gitlab_members": {"namespace_id", "user_id", "access_level"},
    "crm_persons": {
        "person_id", "email", "record_type", "status", "initial_source", "person_score", "account_id",
        "created_at", "updated_at", "merged_into_person_id",
    },
    "marketo_unsubscribes": {"event_id", "email", "unsubscribed_at"},
    "cs_accounts": {
        "account_id", "account_name", "carr", "technical_account_manager", "account_owner_team",
        "products_purchased", "deployment_type", "support_level", "namespace_id", "created_at", "renewal_date",
    },
    "cs_contacts": {"account_id", "person_id", "email", "gitlab_role"},
}  # fmt: skip


@pytest.fixture(scope="module")
def data() -> SampleData:
    return generate(users=USERS, seed=42, as_of=AS_OF)


def _all_lines(data: SampleData, kind: str) -> list[str]:
    return [line for event_file in data.event_files()[kind] for line in event_file.lines]


def test_same_seed_and_as_of_produce_identical_data(data: SampleData) -> None:
    again = generate(users=USERS, seed=42, as_of=AS_OF)
    for name in TABLE_NAMES:
        pd.testing.assert_frame_equal(data.tables()[name], again.tables()[name])
    assert again.event_files() == data.event_files()
    assert again.violations == data.violations


def test_a_different_seed_produces_different_data(data: SampleData) -> None:
    other = generate(users=USERS, seed=7, as_of=AS_OF)
    assert not other.gitlab_users["email"].equals(data.gitlab_users["email"])


def test_every_table_has_its_required_columns(data: SampleData) -> None:
    for name, columns in REQUIRED_COLUMNS.items():
        assert columns <= set(data.tables()[name].columns), name


def test_ids_are_unique_and_types_follow_the_contract(data: SampleData) -> None:
    assert data.gitlab_users["user_id"].is_unique
    assert data.gitlab_namespaces["namespace_id"].is_unique
    assert not data.gitlab_members.duplicated(["namespace_id", "user_id"]).any()
    assert not data.crm_persons.duplicated(["person_id", "updated_at"]).any()
    assert not data.cs_contacts.duplicated(["account_id", "person_id"]).any()
    assert data.marketo_unsubscribes["event_id"].is_unique
    assert data.gitlab_users["setup_for_company"].dtype == bool
    assert data.gitlab_users["created_at"].dtype.kind == "M"
    assert str(data.crm_persons["merged_into_person_id"].dtype) == "Int64"


def test_users_fall_both_inside_and_outside_the_two_month_window(data: SampleData) -> None:
    cutoff = pd.Timestamp(AS_OF) - pd.Timedelta(days=60)
    created = data.gitlab_users["created_at"]
    assert (created >= cutoff).any() and (created < cutoff).any()
    assert 0.3 < (created >= cutoff).mean() < 0.5
    assert (created < pd.Timestamp(AS_OF)).all()


def test_all_ten_lead_statuses_and_every_access_level_appear(data: SampleData) -> None:
    assert set(LEAD_STATUSES) <= set(data.crm_persons["status"])
    assert set(data.gitlab_members["access_level"]) == set(ACCESS_LEVELS)


def test_namespace_creators_are_owners_of_their_namespace(data: SampleData) -> None:
    owners = data.gitlab_namespaces.merge(
        data.gitlab_members,
        left_on=["namespace_id", "creator_user_id"],
        right_on=["namespace_id", "user_id"],
    )
    assert len(owners) == len(data.gitlab_namespaces)
    assert (owners["access_level"] == 50).all()


def test_trial_dates_are_set_only_for_trial_plans(data: SampleData) -> None:
    namespaces = data.gitlab_namespaces
    is_trial = namespaces["plan_title"].str.endswith("Trial")
    assert namespaces.loc[is_trial, "trial_start_date"].notna().all()
    assert namespaces.loc[~is_trial, "trial_start_date"].isna().all()
    trials = namespaces[is_trial]
    assert ((trials["trial_end_date"] - trials["trial_start_date"]) == dt.timedelta(days=30)).all()


def test_at_least_one_person_is_merged_into_an_existing_person(data: SampleData) -> None:
    merged = data.crm_persons["merged_into_person_id"].dropna()
    assert len(merged) >= 1
    assert set(merged) <= set(data.crm_persons["person_id"])


def test_most_users_have_a_crm_person_with_the_same_email(data: SampleData) -> None:
    crm_emails = set(data.crm_persons["email"].dropna())
    share = data.gitlab_users["email"].isin(crm_emails).mean()
    assert 0.7 < share < 0.9


def test_every_allowed_initial_source_appears(data: SampleData) -> None:
    allowed = set(load_initial_sources()["initial_source"])
    assert allowed <= set(data.crm_persons["initial_source"].dropna())


def test_violations_are_recorded_for_every_kind(data: SampleData) -> None:
    assert set(data.violations) == set(VIOLATION_KINDS)
    assert all(data.violations[kind] for kind in VIOLATION_KINDS)


def test_violating_values_are_actually_present(data: SampleData) -> None:
    persons = data.crm_persons
    by_person = persons.groupby("person_id")

    changed = persons[persons["person_id"].isin(data.violations["initial_source_changed"])]
    assert (changed.groupby("person_id")["initial_source"].nunique() > 1).all()

    unknown = persons[persons["person_id"].isin(data.violations["unknown_initial_source"])]
    assert set(unknown["initial_source"]) <= set(UNKNOWN_INITIAL_SOURCES)

    variants = persons[persons["person_id"].isin(data.violations["initial_source_case_variant"])]
    assert set(variants["initial_source"]) <= set(CASE_VARIANT_INITIAL_SOURCES)
    assert {" trial - gitlab.com ", "WEBCAST"} <= set(variants["initial_source"])

    bad_status = persons[persons["person_id"].isin(data.violations["unknown_status"])]
    assert set(bad_status["status"]) <= set(UNKNOWN_STATUSES)
    assert {"Working", "Recycled"} <= set(bad_status["status"])

    null_email = persons[persons["email"].isna()]
    assert set(null_email["person_id"]) == set(data.violations["null_email"])
    assert 1 <= len(null_email) <= 2

    normal = persons[~persons["person_id"].isin(data.violations["initial_source_changed"])]
    assert (normal.groupby("person_id")["initial_source"].nunique() <= 1).all()
    assert by_person["updated_at"].is_monotonic_increasing.all()


def test_event_files_contain_valid_and_malformed_lines(data: SampleData) -> None:
    for kind in ("trial_signups", "free_registrations"):
        assert len(data.event_files()[kind]) == 3
        parsed, invalid = [], 0
        for line in _all_lines(data, kind):
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                invalid += 1
        assert invalid >= 1
        assert any("email" not in event for event in parsed)
        assert any(event.get("employeeBucket") == "9000+" for event in parsed)
        assert any(str(event.get("occurred_at", "")).startswith(f"{AS_OF.year}-02-30") for event in parsed)
        assert all(event["occurred_at"].endswith("Z") for event in parsed)
    free = [json.loads(line) for line in _all_lines(data, "free_registrations") if line.endswith("}")]
    assert {event["setup_for_company"] for event in free} == {True, False}
    assert all(event["companyNamespace"] == event["setup_for_company"] for event in free)


def test_write_sample_data_creates_raw_tables_with_the_returned_counts(data: SampleData, tmp_path: Path) -> None:
    db, landing = tmp_path / "warehouse.duckdb", tmp_path / "landing"
    assert warehouse_is_empty(DuckDBWarehouse(db))
    counts = write_sample_data(data, DuckDBWarehouse(db), landing)
    assert not warehouse_is_empty(DuckDBWarehouse(db))
    with duckdb.connect(str(db), read_only=True) as con:
        for name in TABLE_NAMES:
            [(rows,)] = con.execute(f"select count(*) from raw.{name}").fetchall()
            assert rows == counts[name] == len(data.tables()[name])
        column_types = con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'gitlab_namespaces'"
        ).fetchall()
    types = dict(column_types)
    assert types["created_at"] == "TIMESTAMP"
    assert types["trial_start_date"] == "DATE"
    assert types["plan_is_paid"] == "BOOLEAN"

    for kind in ("trial_signups", "free_registrations"):
        files = sorted((landing / kind).glob("*.jsonl"))
        assert [f.name for f in files] == sorted(f.name for f in data.event_files()[kind])
        written = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]
        assert sorted(written) == sorted(_all_lines(data, kind))
        assert counts[kind] == len(written)


def test_write_sample_data_refuses_to_overwrite_without_replace(data: SampleData, tmp_path: Path) -> None:
    warehouse, landing = DuckDBWarehouse(tmp_path / "warehouse.duckdb"), tmp_path / "landing"
    write_sample_data(data, warehouse, landing)
    with pytest.raises(FileExistsError):
        write_sample_data(data, warehouse, landing)
    assert write_sample_data(data, warehouse, landing, replace=True)["crm_persons"] == len(data.crm_persons)


def test_cli_with_if_empty_does_not_rewrite_an_existing_warehouse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, landing = tmp_path / "warehouse.duckdb", tmp_path / "landing"
    args = ["--users", "200", "--seed", "3", "--as-of", "2026-11-20", "--duckdb-path", str(db)]
    assert main([*args, "--landing-dir", str(landing)]) == 0
    assert "crm_persons" in capsys.readouterr().out
    mtime = db.stat().st_mtime_ns
    with duckdb.connect(str(db), read_only=True) as con:
        before = con.execute("select count(*) from raw.gitlab_users").fetchall()

    rerun = ["--users", "300", "--duckdb-path", str(db), "--landing-dir", str(landing), "--if-empty"]
    assert main(rerun) == 0
    assert "Skipping" in capsys.readouterr().out
    assert db.stat().st_mtime_ns == mtime
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from raw.gitlab_users").fetchall() == before == [(200,)]


def test_cli_reads_default_paths_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "env.duckdb"))
    monkeypatch.setenv("LANDING_DIR", str(tmp_path / "env_landing"))
    assert main(["--users", "200", "--as-of", "2026-11-20"]) == 0
    assert not warehouse_is_empty(DuckDBWarehouse(tmp_path / "env.duckdb"))
    assert any((tmp_path / "env_landing" / "trial_signups").glob("*.jsonl"))
