"""The code location loads fast, offline and without touching a warehouse, and holds what the UI shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from marketing_pipelines.paths import PROJECT_ROOT

EXPECTED_ASSETS = {
    "raw/gitlab_users",
    "raw/gitlab_namespaces",
    "raw/gitlab_members",
    "raw/crm_persons",
    "raw/marketo_unsubscribes",
    "raw/cs_accounts",
    "raw/cs_contacts",
    "marts/dim_initial_source",
    "marts/dim_lead_status",
    "marts/dim_access_level",
    "marts/marketing_contacts",
    "marts/marketing_contact_namespace_detail",
    "marts/initial_source_history",
    "staging/stg_crm__persons",
    "audiences/iterable_user_audience",
    "iterable_user_sync",
    "iterable_unsubscribe_sync",
    "raw/trial_signup_events",
    "raw/free_registration_events",
    "staging/stg_signups__trial_signup_events",
    "staging/stg_signups__free_registration_events",
    "audiences/iterable_trial_events",
    "iterable_signup_profile_sync",
    "iterable_trial_event_sync",
    "audiences/gainsight_program_recipients",
    "audiences/gainsight_program_companies",
    "gainsight_company_sync",
    "gainsight_person_sync",
}


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> dg.RepositoryDefinition:
    from marketing_pipelines.definitions import defs

    return defs().get_repository_def()


def test_definitions_hold_the_expected_assets(repository):
    keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert keys >= EXPECTED_ASSETS


def test_dbt_tests_surface_as_asset_checks(repository):
    checks = {(key.asset_key.to_user_string(), key.name) for key in repository.asset_graph.asset_check_keys}
    assert ("marts/marketing_contacts", "unique_marketing_contacts_person_id") in checks
    assert any(asset == "raw/crm_persons" for asset, _ in checks), "source tests should be checks on raw assets"


def test_every_asset_has_description_owner_group_and_kinds(repository):
    for key in repository.asset_graph.get_all_asset_keys():
        node = repository.asset_graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert node.owners, f"{key.to_user_string()} has no owner"
        assert node.group_name in {
            "raw",
            "reference",
            "staging",
            "marts",
            "audiences",
            "iterable",
            "gainsight",
            "signups",
        }, key
        assert node.kinds, f"{key.to_user_string()} has no kinds"


def test_gainsight_syncs_sit_behind_the_blocking_recipient_checks(repository):
    graph = repository.asset_graph
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    assert checks["sold_to_never_surveyed"].blocking and checks["recipient_roles_valid"].blocking
    assert not checks["every_program_account_has_a_recipient"].blocking
    companies = dg.AssetKey(["audiences", "gainsight_program_companies"])
    for name, blocking in (
        ("every_customer_account_in_a_program", True),
        ("company_carr_matches_source", True),
        ("account_has_several_sold_to_contacts", False),
        ("account_carr_not_an_amount", False),
    ):
        assert checks[name].asset_key == companies and checks[name].blocking == blocking, name
    assert companies in graph.get(dg.AssetKey("gainsight_company_sync")).parent_keys
    recipients = dg.AssetKey(["audiences", "gainsight_program_recipients"])
    assert checks["sold_to_never_surveyed"].asset_key == recipients
    for sync in ("gainsight_company_sync", "gainsight_person_sync"):
        assert recipients in graph.get(dg.AssetKey(sync)).parent_keys, f"{sync} must depend on the recipients"
    assert dg.AssetKey("gainsight_company_sync") in graph.get(dg.AssetKey("gainsight_person_sync")).parent_keys


def test_daily_schedule_targets_the_refresh_job(repository):
    schedule = repository.get_schedule_def("refresh_marketing_data_schedule")
    assert schedule.job_name == "refresh_marketing_data_job"
    assert schedule.cron_schedule == "0 5 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert repository.has_job("refresh_marketing_data_job")


def test_writing_assets_share_the_warehouse_pool(repository):
    job = repository.get_job("refresh_marketing_data_job")
    pools = {node.definition.pool for node in job.graph.node_dict.values()}
    assert pools == {"warehouse", None}
    # every step that opens the warehouse is in the pool; the others read only the Dagster instance
    outside = {name: node.definition for name, node in job.graph.node_dict.items() if node.definition.pool is None}
    assert all("warehouse" not in definition.required_resource_keys for definition in outside.values()), outside
    assert set(outside) == {"raw_sources_still_arriving"}


def test_loading_definitions_touches_no_warehouse(tmp_path: Path):
    warehouse = tmp_path / "never-created.duckdb"
    code = "from marketing_pipelines.definitions import defs; defs().get_repository_def()"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={"DUCKDB_PATH": str(warehouse), "PATH": "", "HTTPS_PROXY": "http://127.0.0.1:9", "HOME": str(tmp_path)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert not warehouse.exists()


def test_dagster_validates_the_workspace():
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def run_dg(*args: str) -> subprocess.CompletedProcess[str]:
    """The `dg` CLI of this environment, from the repository root (its [tool.dg] names the code location)."""
    environment = {**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    return subprocess.run(
        [str(Path(sys.executable).with_name("dg")), *args],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_dg_checks_and_lists_the_code_location():
    """The documented `dg check defs` and `dg list defs` load the code location that `make dev` (`dg dev`) serves."""
    check = run_dg("check", "defs")
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    assert "All definitions loaded successfully" in check.stdout + check.stderr
    listed = run_dg("list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    definitions = json.loads(listed.stdout)
    assert {job["name"] for job in definitions["jobs"]} == {"refresh_marketing_data_job", "ingest_signups_job"}
    assert {"marts/marketing_contacts", "raw/crm_persons"} <= {asset["asset_key"] for asset in definitions["assets"]}


def test_signup_sensor_targets_the_ingest_job_and_runs_by_default(repository):
    sensor = repository.get_sensor_def("trial_signup_sensor")
    assert sensor.job_name == "ingest_signups_job"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 10  # a landed signup waits at most 10 s for its run
    assert sensor.description
    job = repository.get_job("ingest_signups_job")
    assert {"raw__trial_signup_events", "raw__free_registration_events"} <= set(job.graph.node_dict)
    # no dbt step in the minute between a signup and Iterable: the audiences it reads are views
    assert not any(name.endswith("dbt_models") for name in job.graph.node_dict)
    assert {"iterable_signup_profile_sync", "iterable_trial_event_sync"} <= set(job.graph.node_dict)


def test_every_sync_asset_has_a_non_blocking_health_check(repository):
    graph = repository.asset_graph
    syncs = {key.to_user_string() for key in graph.get_all_asset_keys() if key.to_user_string().endswith("_sync")}
    health = {
        key.asset_key.to_user_string(): graph.get_check_spec(key)
        for key in graph.asset_check_keys
        if key.name.endswith("_sync_health")
    }
    assert syncs == set(health) and len(syncs) == 6, "one health check on every destination sync"
    assert all(spec.name == f"{sync}_health" for sync, spec in health.items())
    assert health["iterable_user_sync"].name == "iterable_user_sync_health"
    assert not any(spec.blocking for spec in health.values()), "a health check reports; it never stops a push"
    assert not any("rejection_backlog" in key.name for key in graph.asset_check_keys), "the old checks are gone"


def test_the_audited_history_is_built_in_a_step_before_the_contacts(repository):
    """A blocking check on the history holds back only its direct dependents: the contacts must be one, in a later
    dbt step, so a tampered history never reaches them."""
    graph = repository.asset_graph
    history, contacts = dg.AssetKey(["marts", "initial_source_history"]), dg.AssetKey(["marts", "marketing_contacts"])
    steps = {
        assets_def.node_def.name: set(assets_def.keys)
        for assets_def in graph.assets_defs
        if assets_def.is_executable and assets_def.node_def.name.endswith("_dbt_models")
    }
    assert set(steps) == {"staging_dbt_models", "mart_dbt_models", "audience_dbt_models"}
    assert (
        history in steps["staging_dbt_models"]
        and dg.AssetKey(["staging", "stg_crm__persons"]) in steps["staging_dbt_models"]
    )
    assert contacts in steps["mart_dbt_models"] and history not in steps["mart_dbt_models"]
    assert history in graph.get(contacts).parent_keys
    checks = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    immutable = checks["initial_source_immutable"]
    assert immutable.asset_key == history and immutable.blocking
    for name in ("every_crm_record_in_one_contact", "merge_keeps_oldest_initial_source"):
        assert checks[name].asset_key == contacts and checks[name].blocking, name
    job = repository.get_job("refresh_marketing_data_job")
    assert set(steps) <= set(job.graph.node_dict)


def test_dbt_is_the_one_beside_the_running_interpreter_even_with_another_on_path(tmp_path, monkeypatch):
    """`dagster dev` started as `.venv/bin/python -m ...` without an activated venv still finds the project's dbt."""
    from marketing_pipelines.resources.dbt import dbt_executable

    other = tmp_path / "bin"
    other.mkdir()
    (other / "dbt").write_text("#!/bin/sh\nexit 1\n")
    (other / "dbt").chmod(0o755)
    monkeypatch.setenv("PATH", str(other))
    assert dbt_executable() == str(Path(sys.executable).with_name("dbt"))
    assert Path(dbt_executable()).is_file()
