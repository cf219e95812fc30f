"""The sample warehouse, built once per test process, and copies of built warehouses for tests to change."""

from __future__ import annotations

import shutil
from pathlib import Path

from marketing_pipelines.sample_data import generate, write_sample_data
from marketing_pipelines.warehouse import DuckDBWarehouse
from tests.support.dbt import run_dbt

#: The sample data of the shared warehouse (as `make sample-data` makes it, smaller).
SAMPLE_USERS, SAMPLE_SEED = 300, 3


def build_sample_warehouse(root: Path) -> Path:
    """Generated sample data in `raw` (its landing files in ``root/landing``), then one full `dbt build`."""
    path = root / "warehouse.duckdb"
    write_sample_data(generate(users=SAMPLE_USERS, seed=SAMPLE_SEED), DuckDBWarehouse(path), root / "landing")
    run_dbt(["build"], path)
    return path


def copy_warehouse(source: Path, destination: Path) -> DuckDBWarehouse:
    """A file copy of a built warehouse (closed, so the copy is complete), to change without touching the source."""
    shutil.copyfile(source, destination)
    return DuckDBWarehouse(destination)
