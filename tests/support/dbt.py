"""The real dbt CLI against a DuckDB file, each invocation in a target folder of its own.

Parallel test workers run dbt at the same time: a shared `dbt_project/target` would let one build overwrite the
manifest another process is reading, or the `run_results.json` a test is about to read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from marketing_pipelines.paths import DBT_PROJECT_DIR
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.raw import load_raw_rows

DBT = str(Path(sys.executable).with_name("dbt"))


class DbtRun(subprocess.CompletedProcess[str]):
    """A finished dbt invocation and the target folder holding its artifacts (`run_results.json`, ...)."""

    target_path: Path

    def run_results(self) -> list[dict[str, Any]]:
        return json.loads((self.target_path / "run_results.json").read_text())["results"]


def run_dbt(
    args: list[str],
    duckdb_path: Path | None,
    *,
    check: bool = True,
    target_path: Path | None = None,
    settings: Mapping[str, str] | None = None,
) -> DbtRun:
    """Run the real dbt CLI from the dbt project folder against a DuckDB file, as `make` and Dagster do (or, with
    ``duckdb_path`` None, against the warehouse the environment ``settings`` select).

    Artifacts and logs go to ``target_path`` (a fresh folder beside the DuckDB file unless given)."""
    folder = Path(duckdb_path).parent if duckdb_path is not None else None
    target = target_path or Path(tempfile.mkdtemp(prefix="dbt-target-", dir=folder))
    warehouse = {"DUCKDB_PATH": str(duckdb_path), "MARKETING_WAREHOUSE": "duckdb"} if duckdb_path is not None else {}
    env = {**os.environ, **warehouse, **(settings or {}), "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(target)}
    completed = subprocess.run(
        [DBT, *args, "--profiles-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{completed.stdout[-6000:]}\n{completed.stderr[-2000:]}")
    result = DbtRun(completed.args, completed.returncode, completed.stdout, completed.stderr)
    result.target_path = target
    return result


def build_dbt(duckdb_path: Path, *, as_of: str, extra: Iterable[str] = ()) -> DbtRun:
    """`dbt build` with a fixed reference date, so time windows are deterministic."""
    return run_dbt(["build", "--vars", json.dumps({"as_of_date": as_of}), *extra], duckdb_path)


def build_from_raw(
    path: Path, rows: Mapping[str, list[dict[str, Any]]], *, as_of: str | None = None, select: str | None = None
) -> DuckDBWarehouse:
    """A warehouse built from hand-made raw rows: every raw table loaded (empty where no rows are given), then
    `dbt build` (of ``select`` only, if given; at the reference date ``as_of``, if given)."""
    warehouse = DuckDBWarehouse(path)
    load_raw_rows(warehouse, rows)
    args = ["build"]
    if as_of is not None:
        args += ["--vars", json.dumps({"as_of_date": as_of})]
    if select is not None:
        args += ["--select", select]
    run_dbt(args, path)
    return warehouse


def parse_manifest() -> Path:
    """`dbt parse` into a private folder, then move the manifest into `dbt_project/target` in one step (a process
    loading the definitions at that moment reads the old file or the new one, never half of one)."""
    target = DBT_PROJECT_DIR / "target"
    target.mkdir(exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix="parse-", dir=target))
    run_dbt(["parse", "--quiet"], private / "parse.duckdb", target_path=private)
    manifest = target / "manifest.json"
    os.replace(private / "manifest.json", manifest)
    return manifest
