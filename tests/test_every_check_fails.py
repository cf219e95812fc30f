"""Every asset check fails when the rule it guards is broken: a check that cannot fail tells analysts nothing.

One broken warehouse serves every check (cases in `tests/check_cases.py`):
1. hand-made raw rows combining every breakage are loaded, and the seeds and models are built for real
   (`dbt build` without its tests, so no failing test skips a downstream model);
2. the tamperings meant for the Python checks change a few built rows, then every Python `@asset_check` is executed
   through Dagster (a job selecting them, with the code location's own resources, on this DuckDB file);
3. the tamperings meant for dbt tests append NULL, duplicate or out-of-range rows where a model guarantees them
   away, then `dbt test` runs once; each test's result in `run_results.json` is mapped to its asset check with
   dagster-dbt's own test-to-check mapping and the project's translator.

Every check of the definitions is covered, including the dbt tests on the raw sources and the staging views: they
surface as WARN checks that name upstream problems, which analysts read as much as the mart checks.
`test_every_check_has_a_case` fails, naming it, when a check is added without a case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from dagster_dbt.asset_utils import get_asset_check_key_for_test

from marketing_pipelines.definitions import build_definitions
from marketing_pipelines.defs.transform import checks as transform_checks
from marketing_pipelines.defs.transform.translator import MarketingDbtTranslator
from marketing_pipelines.resources import WarehouseResource, build_resources
from marketing_pipelines.resources.dbt import dbt_project
from marketing_pipelines.signups.tables import EVENT_TABLES, create_tables_sql, event_column_types
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.check_cases import AS_OF, BREAKAGES, CASES, CheckId, raw_rows, tamperings
from tests.support.dbt import run_dbt
from tests.support.raw import load_raw_rows

FAILED_DBT_STATUSES = ("fail", "warn")  # a test with `severity: warn` that finds rows ends as "warn"


def check_id(key: dg.AssetCheckKey) -> CheckId:
    return key.asset_key.to_user_string(), key.name


@dataclass(frozen=True)
class Evaluations:
    """What every check said about the broken warehouse."""

    python: dict[CheckId, dg.AssetCheckEvaluation]
    dbt: dict[CheckId, dict[str, Any]]
    dbt_checks: frozenset[CheckId]
    immutable_before_tampering: dg.AssetCheckResult


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return build_definitions(build_resources({}))


@pytest.fixture(scope="module")
def defined_checks(definitions: dg.Definitions) -> set[CheckId]:
    return {check_id(key) for key in definitions.get_repository_def().asset_graph.asset_check_keys}


def dbt_check_ids() -> dict[str, CheckId]:
    """Every dbt test of the manifest, by unique id, as the asset check dagster-dbt makes of it."""
    project = dbt_project()
    manifest = json.loads(project.manifest_path.read_text())
    translator = MarketingDbtTranslator()
    ids = {}
    for unique_id in manifest["nodes"]:
        key = get_asset_check_key_for_test(manifest, translator, unique_id, project)
        if key is not None:
            ids[unique_id] = check_id(key)
    return ids


def load_broken_raw_data(warehouse: DuckDBWarehouse) -> None:
    rows = raw_rows()
    events = {table: rows.pop(table, []) for table in EVENT_TABLES.values()}
    load_raw_rows(warehouse, rows)
    warehouse.execute(create_tables_sql())
    for table, table_rows in events.items():
        warehouse.write_frame("raw", table, pd.DataFrame(table_rows, columns=list(event_column_types())))


def evaluate_python_checks(path: Path, keys: list[dg.AssetCheckKey]) -> dict[CheckId, dg.AssetCheckEvaluation]:
    """Execute the selected checks through Dagster, with the code location's warehouse at `path`."""
    job = dg.define_asset_job("every_python_check", selection=dg.AssetSelection.checks(*keys))
    resources = build_resources({}, warehouse=WarehouseResource(kind="duckdb", duckdb_path=str(path)))
    merged = dg.Definitions.merge(build_definitions(resources), dg.Definitions(jobs=[job]))
    result = merged.resolve_job_def(job.name).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    evaluations = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            evaluations[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = evaluation
    return evaluations


@pytest.fixture(scope="module")
def evaluations(
    tmp_path_factory: pytest.TempPathFactory, definitions: dg.Definitions, defined_checks: set[CheckId]
) -> Evaluations:
    warehouse = DuckDBWarehouse(tmp_path_factory.mktemp("broken") / "warehouse.duckdb")
    load_broken_raw_data(warehouse)
    build = ["build", "--exclude-resource-type", "test", "--vars", json.dumps({"as_of_date": AS_OF.isoformat()})]
    run_dbt(build, warehouse.path)

    # A passing evaluation records the Initial Source history; the tampering then rewrites it.
    resource = WarehouseResource(duckdb_path=str(warehouse.path))
    immutable_before = transform_checks.initial_source_immutable(warehouse=resource)
    for tamper in tamperings("python"):
        tamper(warehouse)
    dbt_ids = dbt_check_ids()
    python_keys = [
        key
        for key in definitions.get_repository_def().asset_graph.asset_check_keys
        if check_id(key) not in set(dbt_ids.values())
    ]
    python = evaluate_python_checks(warehouse.path, python_keys)

    for tamper in tamperings("dbt"):
        tamper(warehouse)
    results = run_dbt(["test"], warehouse.path, check=False).run_results()  # fails, as it should: they say which
    dbt = {dbt_ids[result["unique_id"]]: result for result in results if result["unique_id"] in dbt_ids}
    return Evaluations(python, dbt, frozenset(dbt_ids.values()), immutable_before)


def test_every_check_has_a_case(defined_checks):
    missing = sorted(defined_checks - CASES.keys())
    stale = sorted(CASES.keys() - defined_checks)
    assert not missing, "asset checks without a case in tests/check_cases.py (add one that breaks each): " + ", ".join(
        f"{asset}:{name}" for asset, name in missing
    )
    assert not stale, "cases for checks that no longer exist: " + ", ".join(f"{a}:{n}" for a, n in stale)


def test_every_case_names_known_breakages_and_every_breakage_is_used():
    named = {name for case in CASES.values() for name in case.breakages}
    assert named <= BREAKAGES.keys(), f"unknown breakages: {sorted(named - BREAKAGES.keys())}"
    assert BREAKAGES.keys() <= named, f"breakages no case relies on: {sorted(BREAKAGES.keys() - named)}"
    for name, breakage in BREAKAGES.items():
        assert breakage.why, name
        assert breakage.raw or breakage.tamper or breakage.stage == "config", f"{name} breaks nothing"
        if breakage.tamper or breakage.stage == "config":
            assert breakage.unreachable, f"{name} changes the built warehouse: say why no raw row can break the rule"


def test_the_history_audit_was_recorded_by_a_passing_evaluation(evaluations):
    """The immutability case is meaningful only if the check passed on the warehouse before its history changed."""
    assert evaluations.immutable_before_tampering.passed, evaluations.immutable_before_tampering.description


def case_params() -> list[Any]:
    params = []
    for check, case in sorted(CASES.items()):
        marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
        params.append(pytest.param(check, marks=marks, id=f"{check[0]}:{check[1]}"))
    return params


@pytest.mark.parametrize("check", case_params())
def test_check_fails_on_the_broken_warehouse(check: CheckId, evaluations: Evaluations):
    breakages = "; ".join(BREAKAGES[name].why for name in CASES[check].breakages)
    if check in evaluations.dbt_checks:
        result = evaluations.dbt.get(check)
        assert result is not None, f"dbt test {check[1]} did not run"
        assert result["status"] in FAILED_DBT_STATUSES and result["failures"], (
            f"dbt test {check[1]} ended {result['status']!r} ({result.get('message')}) although: {breakages}"
        )
    else:
        evaluation = evaluations.python.get(check)
        assert evaluation is not None, f"check {check[1]} on {check[0]} was not evaluated"
        assert not evaluation.passed, f"{check[1]} passed ({evaluation.description}) although: {breakages}"
