"""Resources shared by every domain, configured from the environment at run time."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster_dbt import DbtCliResource
from pydantic import PrivateAttr

from marketing_pipelines.defs.gainsight.resources import GainsightResource
from marketing_pipelines.defs.iterable.resources import IterableResource
from marketing_pipelines.defs.transform.project import dbt_project
from marketing_pipelines.paths import DEFAULT_DUCKDB_PATH, resolve_project_path
from marketing_pipelines.warehouse import DuckDBWarehouse, SnowflakeWarehouse, Warehouse
from marketing_pipelines.warehouse.duckdb import WarehouseFileError

if TYPE_CHECKING:
    from dagster_snowflake import SnowflakeResource

SUPPORTED_WAREHOUSES = ("duckdb", "snowflake")
SNOWFLAKE_REQUIRED = ("SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD", "SNOWFLAKE_DATABASE")


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse selected by ``MARKETING_WAREHOUSE`` (``duckdb`` by default, or ``snowflake``).

    Fields left unset are read from the environment when a run starts, never when definitions load. Snowflake
    sessions come from dagster-snowflake's ``SnowflakeResource`` (the ``SNOWFLAKE_*`` settings); one session serves the
    whole run and is closed when the run's resources are torn down.
    """

    kind: str | None = None
    duckdb_path: str | None = None
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def resolved_kind(self) -> str:
        kind = (self.kind or dg.EnvVar("MARKETING_WAREHOUSE").get_value(default="duckdb") or "duckdb").lower()
        if kind not in SUPPORTED_WAREHOUSES:
            raise dg.Failure(
                f"MARKETING_WAREHOUSE={kind!r} is not supported here; expected one of {SUPPORTED_WAREHOUSES}"
            )
        return kind

    def get_warehouse(self) -> Warehouse:
        """The configured warehouse implementation (the same object for every call in a run).

        A DuckDB file that is not a database fails the step with a one-line ``dagster.Failure`` naming the file
        and the command that rebuilds it.
        """
        if self._warehouse is None:
            if self.resolved_kind() == "snowflake":
                self._warehouse = snowflake_warehouse()
            else:
                path = self.duckdb_path or dg.EnvVar("DUCKDB_PATH").get_value(default=DEFAULT_DUCKDB_PATH)
                duckdb_warehouse = DuckDBWarehouse(resolve_project_path(path or DEFAULT_DUCKDB_PATH))
                try:
                    duckdb_warehouse.check_file()
                except WarehouseFileError as error:
                    raise dg.Failure(description=str(error), allow_retries=False) from None
                self._warehouse = duckdb_warehouse
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None


def snowflake_resource() -> SnowflakeResource:
    """dagster-snowflake's resource, configured from the ``SNOWFLAKE_*`` variables (read now, at run time).

    ``SNOWFLAKE_HOST``/``PORT``/``PROTOCOL`` only point it at a non-standard endpoint (tests: a fakesnow server).
    """
    from dagster_snowflake import SnowflakeResource  # ~15 s to import: only when Snowflake is selected

    missing = [name for name in SNOWFLAKE_REQUIRED if not setting(name)]
    if missing:
        raise dg.Failure(f"MARKETING_WAREHOUSE=snowflake needs {', '.join(missing)} in the environment")
    endpoint: dict[str, Any] = {
        "host": setting("SNOWFLAKE_HOST"),
        "port": int(port) if (port := setting("SNOWFLAKE_PORT")) else None,
        "protocol": setting("SNOWFLAKE_PROTOCOL"),
    }
    return SnowflakeResource(
        account=setting("SNOWFLAKE_ACCOUNT"),
        user=setting("SNOWFLAKE_USER"),
        password=setting("SNOWFLAKE_PASSWORD"),
        database=setting("SNOWFLAKE_DATABASE"),
        schema=setting("SNOWFLAKE_SCHEMA") or "PUBLIC",
        role=setting("SNOWFLAKE_ROLE"),
        warehouse=setting("SNOWFLAKE_WAREHOUSE"),
        paramstyle="qmark",  # `?` placeholders, as on DuckDB
        additional_snowflake_connection_args={k: v for k, v in endpoint.items() if v is not None} or None,
    )


def snowflake_warehouse() -> SnowflakeWarehouse:
    """The Snowflake implementation of the warehouse interface, over a ``SnowflakeResource`` session."""
    resource = snowflake_resource()
    where = f"Snowflake account {setting('SNOWFLAKE_ACCOUNT')}, database {setting('SNOWFLAKE_DATABASE')}"
    return SnowflakeWarehouse(resource.get_connection, description=where)


def setting(name: str) -> str | None:
    """An environment setting read now (at run time, through ``dg.EnvVar``); blank counts as unset."""
    return dg.EnvVar(name).get_value(default=None) or None


def dbt_executable() -> str:
    """The `dbt` installed beside this interpreter (the project's venv, activated or not), else `dbt` on PATH."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.is_file() else shutil.which("dbt") or "dbt"


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """Every resource the code location binds, by key."""
    return {
        "warehouse": WarehouseResource(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        "iterable": IterableResource(),
        "gainsight": GainsightResource(),
    }
