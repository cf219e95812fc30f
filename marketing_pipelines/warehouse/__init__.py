"""One warehouse interface with an implementation per engine (DuckDB embedded, Snowflake in production)."""

from marketing_pipelines.warehouse.base import Warehouse
from marketing_pipelines.warehouse.duckdb import DuckDBWarehouse
from marketing_pipelines.warehouse.snowflake import SnowflakeWarehouse

__all__ = ["DuckDBWarehouse", "SnowflakeWarehouse", "Warehouse"]
