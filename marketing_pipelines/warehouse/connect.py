"""Engine selection: the DuckDB file or a Snowflake session, from settings the caller passes in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketing_pipelines.paths import resolve_project_path
from marketing_pipelines.warehouse.base import Warehouse
from marketing_pipelines.warehouse.duckdb import DuckDBLimits, DuckDBWarehouse
from marketing_pipelines.warehouse.snowflake import SnowflakeWarehouse

if TYPE_CHECKING:
    from dagster_snowflake import SnowflakeResource

SUPPORTED_WAREHOUSES = ("duckdb", "snowflake")


class WarehouseSettingError(ValueError):
    """A warehouse setting that is missing or not supported (names the setting, never a secret's value)."""


@dataclass(frozen=True)
class SnowflakeSettings:
    """Connection settings of the production warehouse; each field is the ``SNOWFLAKE_*`` setting of its name.

    ``host``/``port``/``protocol`` only point the connector at a non-standard endpoint (tests: a fakesnow server).
    """

    account: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    schema: str | None = None
    role: str | None = None
    warehouse: str | None = None
    host: str | None = None
    port: int | None = None
    protocol: str | None = None

    def missing(self) -> list[str]:
        """The names of the required settings that are unset or blank."""
        required = {"account": self.account, "user": self.user, "password": self.password, "database": self.database}
        return [f"SNOWFLAKE_{name.upper()}" for name, value in required.items() if not value]

    def session_resource(self) -> SnowflakeResource:
        """dagster-snowflake's resource over these settings (its connections are the warehouse's sessions)."""
        from dagster_snowflake import SnowflakeResource  # ~15 s to import: only when Snowflake is selected

        endpoint: dict[str, Any] = {"host": self.host, "port": self.port, "protocol": self.protocol}
        return SnowflakeResource(
            account=self.account,
            user=self.user,
            password=self.password,
            database=self.database,
            schema=self.schema or "PUBLIC",
            role=self.role,
            warehouse=self.warehouse,
            paramstyle="qmark",  # `?` placeholders, as on DuckDB
            additional_snowflake_connection_args={k: v for k, v in endpoint.items() if v} or None,
        )


def connect(
    kind: str,
    *,
    duckdb_path: str | Path,
    snowflake: SnowflakeSettings | None = None,
    duckdb_limits: DuckDBLimits | None = None,
) -> Warehouse:
    """The warehouse ``kind`` (``duckdb`` or ``snowflake``, any case) selects.

    Raises ``WarehouseSettingError`` for an unsupported kind or missing Snowflake settings, and
    ``WarehouseFileError`` for a DuckDB file that is not a database.
    """
    kind = kind.lower()
    if kind not in SUPPORTED_WAREHOUSES:
        raise WarehouseSettingError(
            f"MARKETING_WAREHOUSE={kind!r} is not supported here; expected one of {SUPPORTED_WAREHOUSES}"
        )
    if kind == "snowflake":
        settings = snowflake or SnowflakeSettings()
        if missing := settings.missing():
            raise WarehouseSettingError(f"MARKETING_WAREHOUSE=snowflake needs {', '.join(missing)} in the environment")
        where = f"Snowflake account {settings.account}, database {settings.database}"
        return SnowflakeWarehouse(settings.session_resource().get_connection, description=where)
    warehouse = DuckDBWarehouse(resolve_project_path(duckdb_path), limits=duckdb_limits or DuckDBLimits())
    warehouse.check_file()
    return warehouse
