"""Tests for the deterministic sample data generator, loader and CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from marketing_pipelines.resources import WarehouseResource, build_resources, warehouse_resource_from
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
from marketing_pipelines.warehouse import DuckDBWarehouse, Warehouse
from tests import fakesnow_shims

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


# ---- recovery: `--if-empty` fills what is empty and keeps the rest; a damaged file is a one-line error ----

CLI_ARGS = ["--users", "200", "--seed", "3"]
AS_OF_ARGS = ["--as-of", "2026-11-20"]


def _landing_snapshot(landing: Path) -> dict[str, tuple[int, str]]:
    """Every landing file with its modification time and content."""
    return {
        str(p.relative_to(landing)): (p.stat().st_mtime_ns, p.read_text(encoding="utf-8"))
        for p in sorted(landing.rglob("*.jsonl"))
    }


def _raw_counts(warehouse: Warehouse) -> dict[str, int]:
    return {table: n for (_, table), n in warehouse.row_counts(("raw", t) for t in TABLE_NAMES).items()}


def _full_load(tmp_path: Path) -> tuple[Path, Path, dict[str, int]]:
    db, landing = tmp_path / "warehouse.duckdb", tmp_path / "landing"
    assert main([*CLI_ARGS, *AS_OF_ARGS, "--duckdb-path", str(db), "--landing-dir", str(landing)]) == 0
    counts = _raw_counts(DuckDBWarehouse(db))
    assert set(counts) == set(TABLE_NAMES) and all(counts.values())
    return db, landing, counts


def test_if_empty_rebuilds_a_deleted_warehouse_beside_the_kept_landing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, landing, counts = _full_load(tmp_path)
    users_sql = "select user_id, email, created_at from raw.gitlab_users order by user_id"
    users = DuckDBWarehouse(db).query(users_sql)
    files = _landing_snapshot(landing)
    db.unlink()
    capsys.readouterr()

    # no --as-of: the raw tables are made for the day of the kept landing files
    assert main([*CLI_ARGS, "--duckdb-path", str(db), "--landing-dir", str(landing), "--if-empty"]) == 0
    out = capsys.readouterr().out
    assert "Keeping the landing files" in out and "as_of=2026-11-20" in out
    assert _raw_counts(DuckDBWarehouse(db)) == counts
    assert DuckDBWarehouse(db).query(users_sql) == users
    assert _landing_snapshot(landing) == files  # not rewritten, not duplicated


def test_if_empty_fills_only_the_missing_or_empty_tables_and_landing_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, landing, counts = _full_load(tmp_path)
    warehouse = DuckDBWarehouse(db)
    warehouse.execute(
        [
            "drop table raw.cs_contacts",
            "delete from raw.crm_persons",
            "update raw.gitlab_users set company = 'kept by --if-empty' where user_id = 1",
        ]
    )
    for old in (landing / "free_registrations").glob("*.jsonl"):
        old.unlink()
    trial_files = {k: v for k, v in _landing_snapshot(landing).items() if k.startswith("trial_signups")}
    capsys.readouterr()

    assert main([*CLI_ARGS, *AS_OF_ARGS, "--duckdb-path", str(db), "--landing-dir", str(landing), "--if-empty"]) == 0
    written = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert written == ["crm_persons", "cs_contacts", "free_registrations"]
    assert _raw_counts(warehouse) == counts
    assert warehouse.query("select company from raw.gitlab_users where user_id = 1") == [("kept by --if-empty",)]
    after = _landing_snapshot(landing)
    assert {k: v for k, v in after.items() if k.startswith("trial_signups")} == trial_files
    assert len([k for k in after if k.startswith("free_registrations")]) == 3


def test_existing_data_without_a_mode_is_an_error_that_names_the_cli_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, landing, _ = _full_load(tmp_path)
    capsys.readouterr()
    assert main([*CLI_ARGS, "--duckdb-path", str(db), "--landing-dir", str(landing)]) == 1
    err = capsys.readouterr().err
    assert "--replace" in err and "--if-empty" in err and "replace=True" not in err


def _damage(db: Path, how: str) -> None:
    if how == "random_bytes":
        db.write_bytes(random.Random(7).randbytes(64 * 1024))
        return
    with duckdb.connect(str(db)) as con:  # a real database whose first data block is then overwritten
        con.execute("create schema raw")
        con.execute("create table raw.crm_persons as select range as person_id from range(100000)")
    damaged = bytearray(db.read_bytes())
    damaged[4096:16384] = random.Random(7).randbytes(16384 - 4096)
    db.write_bytes(bytes(damaged))


@pytest.mark.parametrize("how", ["random_bytes", "damaged_block"])
def test_a_damaged_warehouse_file_is_a_one_line_error_naming_the_file_and_the_fix(tmp_path: Path, how: str) -> None:
    db, landing = tmp_path / "warehouse.duckdb", tmp_path / "landing"
    _damage(db, how)
    env = {**os.environ, "MARKETING_WAREHOUSE": "duckdb", "DUCKDB_PATH": str(db), "LANDING_DIR": str(landing)}
    result = subprocess.run(
        [sys.executable, "-m", "marketing_pipelines.sample_data", "--if-empty", *CLI_ARGS],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {db.resolve()} is not a readable DuckDB database")
    assert "make clean-data && make run" in line
    assert not landing.exists()


def test_a_run_on_a_damaged_warehouse_fails_its_step_with_the_rebuild_command(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    _damage(db, "random_bytes")

    @dg.asset(description="Counts raw persons (a step that reads the warehouse).")
    def persons(warehouse: WarehouseResource) -> int:
        return len(warehouse.get_warehouse().query("select 1 from raw.crm_persons"))

    resources = {"warehouse": WarehouseResource(duckdb_path=str(db))}
    result = dg.materialize([persons], resources=resources, raise_on_error=False)
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    error = failure.step_failure_data.error
    assert error.cls_name == "Failure"
    assert f"{db.resolve()} is not a readable DuckDB database" in error.message
    assert "make clean-data && make run" in error.message


@pytest.fixture(scope="module")
def fakesnow_settings() -> Iterator[dict[str, str]]:
    with fakesnow_shims.server() as connection:
        yield fakesnow_shims.snowflake_env(connection)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Arrow output on a DB-API result:UserWarning")
def test_if_empty_fills_an_empty_snowflake_once_and_the_refresh_builds_on_it(
    fakesnow_settings: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, landing, counts = _full_load(tmp_path)  # landing files exist; the Snowflake warehouse is empty
    files = _landing_snapshot(landing)
    for name, value in fakesnow_settings.items():
        monkeypatch.setenv(name, value)

    args = [*CLI_ARGS, "--landing-dir", str(landing), "--if-empty"]
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Keeping the landing files" in out and "Snowflake account" in out
    with warehouse_resource_from(fakesnow_settings).get_warehouse() as snowflake:
        assert _raw_counts(snowflake) == counts

    assert main(args) == 0
    assert "Skipping sample data" in capsys.readouterr().out
    with warehouse_resource_from(fakesnow_settings).get_warehouse() as snowflake:
        assert _raw_counts(snowflake) == counts  # filled once
    assert _landing_snapshot(landing) == files

    # the daily refresh then builds on the rebuilt warehouse and loads each kept landing file once
    monkeypatch.setenv("LANDING_DIR", str(landing))
    from marketing_pipelines.definitions import build_definitions

    resources = build_resources({}, warehouse=warehouse_resource_from(fakesnow_settings))
    job = build_definitions(resources).resolve_job_def("refresh_marketing_data_job")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert result.success
    trial_lines = sum(len(text.splitlines()) for name, (_, text) in files.items() if name.startswith("trial_signups"))
    with warehouse_resource_from(fakesnow_settings).get_warehouse() as snowflake:
        [(ingested,)] = snowflake.query("select count(*) from ops.ingested_files")
        [(loaded,)] = snowflake.query("select count(*) from raw.trial_signup_events")
        [(quarantined,)] = snowflake.query("select count(*) from ops.quarantine where file like '%trial_signups%'")
        [(persons,)] = snowflake.query("select count(*) from marts.marketing_contacts")
    assert ingested == len(files)
    assert loaded + quarantined == trial_lines
    assert persons > 0


def test_the_newest_row_of_each_watched_extract_is_from_its_last_half_hour():
    """The 36-hour arrival checks watch these three extracts: their newest row must not depend on the sample's
    size or the day, or the checks would fail every evening."""
    as_of = dt.date(2026, 12, 2)
    for users in (50, 300, 3000):
        data = generate(users=users, seed=3, as_of=as_of)
        newest = {
            "gitlab_users": data.gitlab_users["created_at"].max(),
            "gitlab_namespaces": data.gitlab_namespaces["created_at"].max(),
            "crm_persons": data.crm_persons["updated_at"].max(),
        }
        for table, at in newest.items():
            age = pd.Timestamp(as_of) - pd.Timestamp(at)
            assert pd.Timedelta(0) < age <= pd.Timedelta(minutes=30), (users, table, at)
