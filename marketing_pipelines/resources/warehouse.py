"""The warehouse resource: the engine it is configured for, opened once per run."""

from __future__ import annotations

import dagster as dg
from pydantic import Field, PrivateAttr

from marketing_pipelines.paths import DEFAULT_DUCKDB_PATH
from marketing_pipelines.resources.settings import SETTINGS
from marketing_pipelines.warehouse import Warehouse
from marketing_pipelines.warehouse.connect import SnowflakeSettings, WarehouseSettingError, connect
from marketing_pipelines.warehouse.duckdb import (
    DEFAULT_DUCKDB_MEMORY_LIMIT,
    DEFAULT_DUCKDB_THREADS,
    DuckDBLimits,
    WarehouseFileError,
)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse ``kind`` selects: ``duckdb`` (the file at ``duckdb_path``, by default) or ``snowflake``.

    The code location binds every field to its setting (``kind``: ``MARKETING_WAREHOUSE``, ``duckdb_path``:
    ``DUCKDB_PATH``, ``duckdb_memory_limit``/``duckdb_threads``: ``DUCKDB_MEMORY_LIMIT``/``DUCKDB_THREADS``, which
    dbt's profile reads too, ``snowflake_<name>``: ``SNOWFLAKE_<NAME>``; ``build_resources``). Snowflake sessions
    come from dagster-snowflake's ``SnowflakeResource``; one session serves the whole run and is closed when the
    run's resources are torn down.
    """

    kind: str = "duckdb"
    duckdb_path: str = DEFAULT_DUCKDB_PATH
    duckdb_memory_limit: str = DEFAULT_DUCKDB_MEMORY_LIMIT
    duckdb_threads: int = DEFAULT_DUCKDB_THREADS
    snowflake_account: str | None = None
    snowflake_user: str | None = None
    snowflake_password: str | None = Field(default=None, repr=False)
    snowflake_database: str | None = None
    snowflake_schema: str | None = None
    snowflake_role: str | None = None
    snowflake_warehouse: str | None = None
    snowflake_host: str | None = None
    snowflake_port: int | None = None
    snowflake_protocol: str | None = None
    _warehouse: Warehouse | None = PrivateAttr(default=None)

    def snowflake_settings(self) -> SnowflakeSettings:
        """The ``snowflake_*`` fields as the engine selection takes them."""
        return SnowflakeSettings(
            account=self.snowflake_account,
            user=self.snowflake_user,
            password=self.snowflake_password,
            database=self.snowflake_database,
            schema=self.snowflake_schema,
            role=self.snowflake_role,
            warehouse=self.snowflake_warehouse,
            host=self.snowflake_host,
            port=self.snowflake_port,
            protocol=self.snowflake_protocol,
        )

    def dbt_environment(self) -> dict[str, str | None]:
        """The settings as the dbt profile reads them: the environment of a dbt process (None: unset), so dbt
        builds the warehouse this resource opens."""
        values = {name: getattr(self, field) for field, name in SETTINGS["warehouse"].items()}
        return {name: None if value is None or value == "" else str(value) for name, value in values.items()}

    def get_warehouse(self) -> Warehouse:
        """The configured warehouse implementation (the same object for every call in a run).

        An unsupported kind or missing Snowflake settings fail the step with a ``dagster.Failure`` naming the
        setting; a DuckDB file that is not a database fails it with one line naming the file and the command that
        rebuilds it.
        """
        if self._warehouse is None:
            try:
                self._warehouse = connect(
                    self.kind,
                    duckdb_path=self.duckdb_path or DEFAULT_DUCKDB_PATH,
                    snowflake=self.snowflake_settings(),
                    duckdb_limits=DuckDBLimits(self.duckdb_memory_limit, self.duckdb_threads),
                )
            except WarehouseSettingError as error:
                raise dg.Failure(str(error)) from None
            except WarehouseFileError as error:
                raise dg.Failure(description=str(error), allow_retries=False) from None
        return self._warehouse

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
