"""`build_resources` binds every setting a resource holds with `dagster.EnvVar`, resolved when a run starts.

This is the one test module that sets resource settings in the environment: it proves the binding itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from dagster._core.errors import DagsterInvalidConfigError

from marketing_pipelines.paths import DEFAULT_DUCKDB_PATH, PROJECT_ROOT
from marketing_pipelines.resources import (
    SETTINGS,
    GainsightResource,
    IterableResource,
    WarehouseResource,
    build_resources,
)

SECRET = "sk-live-never-logged-0123456789"
SEEN: dict[str, Any] = {}


@dg.asset
def resource_probe(warehouse: WarehouseResource, iterable: IterableResource, gainsight: GainsightResource) -> None:
    """Records the values the run's resources resolved to (kept in this process, never in metadata)."""
    SEEN.update(
        kind=warehouse.kind,
        duckdb_path=warehouse.duckdb_path,
        api_key=iterable.api_key,
        iterable_base_url=iterable.base_url,
        message_type_id=iterable.marketing_message_type_id,
        gainsight_key=gainsight.access_key,
        dry_run=(iterable.is_dry_run, gainsight.is_dry_run),
    )


def readme_settings() -> set[str]:
    """Every variable named in the configuration table of docs/operations.md (linked from the README)."""
    text = (PROJECT_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    table = text.split("## Configuration", 1)[1].split("\n\n", 2)[1]
    return {name for line in table.splitlines() for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}


def test_every_resource_setting_in_the_readme_is_bound_and_every_binding_is_documented():
    bound = {name for fields in SETTINGS.values() for name in fields.values()}
    # read by the signup assets, the sensor, the sync engine
    not_resource_settings = {"LANDING_DIR", "SIGNUPS_INCOMPLETE_LINE_SECONDS", "SYNC_CHANGELOG_RETENTION_DAYS"}
    assert readme_settings() - not_resource_settings == bound
    assert "SNOWFLAKE_PASSWORD" in bound and "GAINSIGHT_ACCESS_KEY" in bound


def test_unset_or_blank_settings_keep_their_defaults():
    resources = build_resources({"ITERABLE_API_KEY": "", "GAINSIGHT_ACCESS_KEY": "  "})
    assert resources["iterable"].api_key is None and resources["iterable"].is_dry_run
    assert resources["gainsight"].access_key is None and resources["gainsight"].is_dry_run
    assert (resources["warehouse"].kind, resources["warehouse"].duckdb_path) == ("duckdb", DEFAULT_DUCKDB_PATH)


def test_set_settings_are_bound_by_name_not_value():
    env = {name: "12" for fields in SETTINGS.values() for name in fields.values()}
    resources = build_resources(env)
    for key, fields in SETTINGS.items():
        for field, name in fields.items():
            value = getattr(resources[key], field)
            assert getattr(value, "env_var_name", None) == name, (key, field)  # an EnvVar (IntEnvVar: integers)


def test_a_run_resolves_the_bound_settings_and_keeps_the_secret_out_of_the_run_records(tmp_path, monkeypatch):
    database = tmp_path / "bound.duckdb"
    for name, value in {
        "MARKETING_WAREHOUSE": "duckdb",
        "DUCKDB_PATH": str(database),
        "ITERABLE_API_KEY": SECRET,
        "ITERABLE_BASE_URL": "https://api.eu.iterable.com",
        "ITERABLE_MARKETING_MESSAGE_TYPE_ID": " 12 ",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("GAINSIGHT_ACCESS_KEY", "GAINSIGHT_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    instance = dg.DagsterInstance.ephemeral()
    SEEN.clear()
    result = dg.materialize([resource_probe], resources=build_resources(), instance=instance)
    assert result.success
    assert {
        "kind": "duckdb",
        "duckdb_path": str(database),
        "api_key": SECRET,
        "iterable_base_url": "https://api.eu.iterable.com",
        "message_type_id": 12,
        "gainsight_key": None,
        "dry_run": (False, True),
    } == SEEN
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    snapshot = instance.get_job_snapshot(run.job_snapshot_id)
    records = [repr(run), repr(snapshot), *(repr(entry) for entry in instance.all_logs(result.run_id))]
    assert not [record for record in records if SECRET in record]
    assert any("ITERABLE_API_KEY" in record for record in records)  # the snapshot names the variable instead


def test_a_message_type_id_that_is_not_an_integer_stops_the_run_naming_the_variable(monkeypatch):
    monkeypatch.setenv("ITERABLE_MARKETING_MESSAGE_TYPE_ID", "GitLab Marketing")
    resources = build_resources()
    with pytest.raises(DagsterInvalidConfigError, match="ITERABLE_MARKETING_MESSAGE_TYPE_ID") as error:
        dg.materialize([resource_probe], resources=resources)
    assert "GitLab Marketing" not in str(error.value)


def evaluate_user_sync_health(path: Path) -> dg.ExecuteInProcessResult:
    """The Iterable user sync's health check alone, with the code location's resources bound from the environment."""
    from marketing_pipelines.defs.iterable.checks import iterable_user_sync_health

    job = dg.define_asset_job("health", selection=dg.AssetSelection.checks(iterable_user_sync_health))
    resources = build_resources(warehouse=WarehouseResource(duckdb_path=str(path)))
    definitions = dg.Definitions(asset_checks=[iterable_user_sync_health], jobs=[job], resources=resources)
    return definitions.resolve_job_def("health").execute_in_process(raise_on_error=False)


def errors(result: dg.ExecuteInProcessResult) -> str:
    """Every error the run's events carry (a step failure, a resource that failed to initialize) and its causes."""
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)


def test_sync_health_thresholds_come_from_the_environment_and_a_bad_one_fails_the_check_naming_it(
    tmp_path, monkeypatch
):
    from marketing_pipelines.sync import Outbox, run_sync
    from marketing_pipelines.sync.iterable import USERS
    from marketing_pipelines.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(tmp_path / "health.duckdb")
    emails = ["a@example.com", "b@example.com", "c@example.com", "not an email"]
    audience = [
        {"email": email, "user_id": str(i), "person_id": i, "user_created_at": "2026-11-01", "data_fields": "{}"}
        for i, email in enumerate(emails)
    ]
    warehouse.write_frame("audiences", "iterable_user_audience", pd.DataFrame(audience), replace=True)
    assert run_sync(warehouse, USERS, Outbox(), run_id="dry").rejected == 1, "1 of 4 rejected: a 25% rate"

    monkeypatch.setenv("SYNC_HEALTH_MAX_REJECTION_RATE", "0.5")
    monkeypatch.setenv("SYNC_HEALTH_MAX_REJECTION_AGE_HOURS", "24")
    (evaluation,) = evaluate_user_sync_health(warehouse.path).get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN, "ERROR only above 50%"
    assert (evaluation.metadata["max_rejection_rate"].value, evaluation.metadata["max_rejection_age_hours"].value) == (
        0.5,
        24,
    )

    monkeypatch.setenv("SYNC_HEALTH_MAX_REJECTION_RATE", "5%")
    result = evaluate_user_sync_health(warehouse.path)
    assert not result.success and not result.get_asset_check_evaluations()
    assert "max_rejection_rate (SYNC_HEALTH_MAX_REJECTION_RATE) must be a decimal from 0 to 1" in errors(result)

    monkeypatch.setenv("SYNC_HEALTH_MAX_REJECTION_RATE", "0.05")
    monkeypatch.setenv("SYNC_HEALTH_MAX_REJECTION_AGE_HOURS", "two days")
    with pytest.raises(DagsterInvalidConfigError, match="SYNC_HEALTH_MAX_REJECTION_AGE_HOURS"):
        evaluate_user_sync_health(warehouse.path)
