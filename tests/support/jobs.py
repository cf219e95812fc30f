"""The code location's jobs run in-process on an ephemeral instance, as the schedule and the sensor start them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

REFRESH_JOB = "refresh_marketing_data_job"
INGEST_JOB = "ingest_signups_job"


def duckdb_resources(path: Path | str) -> dict[str, Any]:
    """The code location's resources on the DuckDB file ``path``, Iterable and Gainsight at their defaults (dry-run)."""
    from marketing_pipelines.resources import WarehouseResource, build_resources

    return build_resources({}, warehouse=WarehouseResource(kind="duckdb", duckdb_path=str(path)))


def run_job(
    name: str,
    resources: dict[str, Any],
    *,
    run_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    raise_on_error: bool = False,
) -> dg.ExecuteInProcessResult:
    """One run of the job ``name`` of the definitions bound to ``resources``, on an ephemeral instance."""
    from marketing_pipelines.definitions import build_definitions

    return (
        build_definitions(resources)
        .resolve_job_def(name)
        .execute_in_process(
            run_config=run_config,
            tags=tags,
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=raise_on_error,
        )
    )


def run_refresh(resources: dict[str, Any]) -> dg.ExecuteInProcessResult:
    """One run of the daily `refresh_marketing_data_job`; a failed step is in the result, not raised."""
    return run_job(REFRESH_JOB, resources)


def signup_sensor_tick(
    warehouse: Any, *, cursor: str | None = None, instance: dg.DagsterInstance | None = None
) -> dg.SensorResult:
    """One tick of the signup sensor reading the ingestion ledger of ``warehouse`` (a `WarehouseResource`)."""
    from marketing_pipelines.defs.signups.sensors import trial_signup_sensor

    with dg.build_sensor_context(
        cursor=cursor, instance=instance or dg.DagsterInstance.ephemeral(), resources={"warehouse": warehouse}
    ) as context:
        return trial_signup_sensor(context)


def run_sensor_and_jobs(
    resources: dict[str, Any], times: int = 1, *, raise_on_error: bool = True
) -> list[dg.ExecuteInProcessResult]:
    """One tick of the signup sensor, then every run it requests, ``times`` times over."""
    tick = signup_sensor_tick(resources["warehouse"])
    return [
        run_job(INGEST_JOB, resources, run_config=request.run_config, tags=request.tags, raise_on_error=raise_on_error)
        for _ in range(times)
        for request in tick.run_requests
    ]


def check_result(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    """The one evaluation of the check ``name`` in a run."""
    evaluations = [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and event.event_specific_data.check_name == name
    ]
    assert len(evaluations) == 1, f"check {name} should be evaluated once"
    return evaluations[0]


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    """The assets a run materialized."""
    return {event.asset_key.to_user_string() for event in result.get_asset_materialization_events()}
