"""The sample warehouse, built once per test session, and copies of built warehouses for tests to change."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest

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


def session_temp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of this test session that every `pytest -n` worker shares (each worker's own
    `basetemp` sits inside it); without xdist, the session's own `basetemp`."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def shared_sample_warehouse(root: Path) -> Path:
    """The sample warehouse in ``root / "sample"``, built by the first process to ask (under an exclusive `fcntl`
    lock: the others wait for it, then reuse it)."""
    folder = root / "sample"
    with (root / "sample.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = folder / "built"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build interrupted half-way
            folder.mkdir()
            build_sample_warehouse(folder)
            done.touch()
    return folder / "warehouse.duckdb"
