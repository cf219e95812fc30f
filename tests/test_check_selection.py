"""A launch evaluates exactly the checks it planned: the dbt steps run the tests of the selected checks only.

A launch from the UI selects assets and, with them, the checks on those assets. The raw sources are observed, not
materialized, so a launch that materializes the dbt models does not select the checks on the raw sources; their
dbt tests must not run then (Dagster would log "... was yielded which is not selected" for each).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.support.jobs import REFRESH_JOB, duckdb_resources

NOT_SELECTED = "was yielded which is not selected"


@pytest.fixture(scope="module")
def refresh_job(sample_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> dg.JobDefinition:
    """The daily job on a private copy of the built sample warehouse (the launches below share it)."""
    from marketing_pipelines.definitions import build_definitions
    from tests.support.warehouses import copy_warehouse

    path = copy_warehouse(sample_warehouse, tmp_path_factory.mktemp("selection") / "warehouse.duckdb").path
    return build_definitions(duckdb_resources(path)).resolve_job_def(REFRESH_JOB)


def launch(
    job: dg.JobDefinition, assets: set[dg.AssetKey], checks: set[dg.AssetCheckKey] | None
) -> tuple[int, int, list[str]]:
    """Run ``job`` with an asset and check selection (None: Dagster's default, the checks on ``assets``), as a
    launch from the UI does; returns the checks planned, the checks evaluated and the 'not selected' warnings."""
    instance = dg.DagsterInstance.ephemeral()
    result = job.get_subset(asset_selection=assets, asset_check_selection=checks).execute_in_process(
        instance=instance, raise_on_error=False
    )
    logs = instance.all_logs(result.run_id)
    planned = [
        e for e in logs if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION_PLANNED"
    ]
    evaluated = [e for e in logs if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    warnings = [e.user_message for e in logs if NOT_SELECTED in (e.user_message or "")]
    return len(planned), len(evaluated), warnings


def graph(job: dg.JobDefinition) -> tuple[set[dg.AssetKey], set[dg.AssetKey], set[dg.AssetCheckKey]]:
    """The job's materializable assets, its observed raw sources and its checks."""
    assets = job.asset_layer.asset_graph
    keys = assets.get_all_asset_keys()
    materializable = {key for key in keys if assets.get(key).is_materializable}
    observed = {key for key in keys if assets.get(key).is_observable}
    return materializable, observed, set(assets.asset_check_keys)


def test_a_ui_launch_of_the_whole_job_evaluates_the_checks_it_planned(refresh_job):
    """ "Materialize all": every materializable asset and the checks on them; the raw sources' tests do not run."""
    materializable, observed, checks = graph(refresh_job)
    selected = {check for check in checks if check.asset_key in materializable}
    assert observed and selected < checks  # there are checks on the observed raw sources, and they are left out
    planned, evaluated, warnings = launch(refresh_job, materializable, selected)
    assert warnings == []
    assert planned == evaluated == len(selected)


def test_a_subset_launch_evaluates_the_checks_it_planned(refresh_job):
    """The staging models alone (downstream of raw sources with dbt tests): their checks, and no others."""
    materializable, _, checks = graph(refresh_job)
    staging = {key for key in materializable if key.path[0] == "staging"}
    planned, evaluated, warnings = launch(refresh_job, staging, None)
    assert warnings == []
    assert planned == evaluated == len({check for check in checks if check.asset_key in staging}) > 0


def test_observing_the_raw_sources_runs_their_dbt_tests(refresh_job):
    """Selecting the raw sources selects their checks: the dbt step runs just those tests (the sources' checks
    follow the sources' selection, as every other check does)."""
    _, observed, checks = graph(refresh_job)
    on_sources = {check for check in checks if check.asset_key in observed}
    planned, evaluated, warnings = launch(refresh_job, observed, on_sources)
    assert warnings == []
    assert planned == evaluated == len(on_sources) > 0
