"""Session-wide fixtures: a prepared dbt manifest, per-process settings, and the shared sample warehouse.

The helpers live in `tests/support/`; test modules import them from there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from marketing_pipelines.paths import DBT_PROJECT_DIR
from marketing_pipelines.warehouse import DuckDBWarehouse, Warehouse
from tests.support.dbt import parse_manifest
from tests.support.warehouses import copy_warehouse, session_temp_root, shared_sample_warehouse

#: Modules started first, so that under `pytest -n` no worker is left with a long one at the end.
LONGEST_FIRST = "slow"


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """The manifest Dagster loads; `make prepare` builds it, this covers a bare `pytest`."""
    manifest = DBT_PROJECT_DIR / "target" / "manifest.json"
    return manifest if manifest.exists() else parse_manifest()


@pytest.fixture(scope="session", autouse=True)
def process_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test process (each `pytest -n` worker) gets its own default warehouse file, landing folder and Dagster
    home: no test reads or writes the repository's `data/` or `.dagster_home`, so parallel workers never share
    them. A test still sets its own values on top."""
    root = tmp_path_factory.mktemp("process")
    (root / "dagster_home").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DUCKDB_PATH", str(root / "warehouse.duckdb"))
        patch.setenv("LANDING_DIR", str(root / "landing"))
        patch.setenv("DAGSTER_HOME", str(root / "dagster_home"))
        yield


@pytest.fixture(scope="session")
def sample_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample data loaded and `dbt build` run once per test session, by the first test process that needs it (the
    others wait for it under a file lock); tests take a copy (`built_sample`) and never change this file."""
    return shared_sample_warehouse(session_temp_root(tmp_path_factory))


@pytest.fixture
def built_sample(sample_warehouse: Path, tmp_path: Path) -> Path:
    """A private copy of the built sample warehouse, for one test to change."""
    return copy_warehouse(sample_warehouse, tmp_path / "warehouse.duckdb").path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `slow` run first (in module order): `--dist loadfile` hands them out before the quick ones."""
    items.sort(key=lambda item: item.get_closest_marker(LONGEST_FIRST) is None)


@pytest.fixture(scope="module")
def fakesnow_env() -> Iterator[dict[str, str]]:
    """The Snowflake settings of a fakesnow server on loopback, one per test module."""
    from tests import fakesnow_shims

    with fakesnow_shims.server() as connection:
        yield fakesnow_shims.snowflake_env(connection)


@pytest.fixture(params=["duckdb", pytest.param("snowflake", marks=pytest.mark.slow)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Warehouse]:
    """An empty warehouse on each engine: a DuckDB file, or a database of the test module's own on its fakesnow
    server (dropped afterwards)."""
    if request.param == "duckdb":
        yield DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        return
    from marketing_pipelines.resources import warehouse_resource_from

    database = request.module.__name__.rsplit(".", 1)[-1].upper()
    warehouse = warehouse_resource_from({**request.getfixturevalue("fakesnow_env"), "SNOWFLAKE_DATABASE": database})
    snowflake = warehouse.get_warehouse()
    yield snowflake
    snowflake.execute(
        [f"drop schema if exists {schema} cascade" for schema in ("audiences", "staging", "marts", "ops")]
    )
    snowflake.close()
