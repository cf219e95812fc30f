"""Shared fixtures: a prepared dbt manifest, raw tables from hand-made rows, and real dbt builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from marketing_pipelines.paths import DBT_PROJECT_DIR
from marketing_pipelines.warehouse import DuckDBWarehouse
from marketing_pipelines.warehouse.raw_tables import RAW_TABLES, create_raw_tables_sql

DBT = str(Path(sys.executable).with_name("dbt"))


def run_dbt(args: list[str], duckdb_path: Path, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real dbt CLI from the dbt project folder against a DuckDB file, as `make` and Dagster do."""
    env = {**os.environ, "DUCKDB_PATH": str(duckdb_path), "MARKETING_WAREHOUSE": "duckdb"}
    result = subprocess.run(
        [DBT, *args, "--profiles-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}")
    return result


def build_dbt(duckdb_path: Path, *, as_of: str, extra: Iterable[str] = ()) -> subprocess.CompletedProcess[str]:
    """`dbt build` with a fixed reference date, so time windows are deterministic."""
    return run_dbt(["build", "--vars", json.dumps({"as_of_date": as_of}), *extra], duckdb_path)


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The manifest Dagster loads; `make prepare` builds it, this covers a bare `pytest`."""
    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    if not manifest.exists():
        run_dbt(["parse", "--quiet"], DBT_PROJECT_DIR / "target" / "parse.duckdb")
    return manifest


def load_raw_rows(warehouse: DuckDBWarehouse, rows: Mapping[str, list[dict[str, Any]]]) -> None:
    """Create every raw table empty, then bulk-insert the given hand-made rows (missing columns are NULL)."""
    warehouse.execute(create_raw_tables_sql(replace=True))
    for table, table_rows in rows.items():
        if not table_rows:
            continue
        frame = pd.DataFrame(table_rows, columns=list(RAW_TABLES[table]))
        warehouse.write_frame("raw", table, frame)


def crm_person(person_id: int, updated_at: datetime, **fields: Any) -> dict[str, Any]:
    """One raw CRM record version (a lead in Inquiry with 10 points, the score as text as the CRM exports it)."""
    row: dict[str, Any] = {
        "person_id": person_id,
        "email": f"person{person_id}@example.com",
        "record_type": "lead",
        "status": "Inquiry",
        "initial_source": None,
        "person_score": "10",
        "created_at": datetime(2024, 1, 1),
        "updated_at": updated_at,
    }
    return {**row, **fields}
