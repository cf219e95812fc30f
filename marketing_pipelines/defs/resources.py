"""Resources shared by every domain, configured from the environment (DESIGN 4) at run time."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource

from marketing_pipelines.defs.gainsight.resources import GainsightResource
from marketing_pipelines.defs.iterable.resources import IterableResource
from marketing_pipelines.defs.transform.project import dbt_project
from marketing_pipelines.paths import DEFAULT_DUCKDB_PATH, resolve_project_path
from marketing_pipelines.warehouse import DuckDBWarehouse, Warehouse

SUPPORTED_WAREHOUSES = ("duckdb",)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse selected by ``MARKETING_WAREHOUSE`` (``duckdb`` by default).

    Fields left unset are read from the environment when a run starts, never when definitions load.
    """

    kind: str | None = None
    duckdb_path: str | None = None

    def resolved_kind(self) -> str:
        kind = (self.kind or dg.EnvVar("MARKETING_WAREHOUSE").get_value(default="duckdb") or "duckdb").lower()
        if kind not in SUPPORTED_WAREHOUSES:
            raise dg.Failure(
                f"MARKETING_WAREHOUSE={kind!r} is not supported here; expected one of {SUPPORTED_WAREHOUSES}"
            )
        return kind

    def get_warehouse(self) -> Warehouse:
        """The configured warehouse implementation."""
        self.resolved_kind()
        path = self.duckdb_path or dg.EnvVar("DUCKDB_PATH").get_value(default=DEFAULT_DUCKDB_PATH)
        return DuckDBWarehouse(resolve_project_path(path or DEFAULT_DUCKDB_PATH))


def dbt_executable() -> str:
    """`dbt` on PATH, else the one installed beside this interpreter (a venv that is not activated)."""
    return shutil.which("dbt") or str(Path(sys.executable).with_name("dbt"))


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """Every resource the code location binds, by key."""
    return {
        "warehouse": WarehouseResource(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        "iterable": IterableResource(),
        "gainsight": GainsightResource(),
    }
