"""One warehouse interface with an implementation per engine (DuckDB embedded, Snowflake in production)."""

from marketing_pipelines.warehouse.base import Warehouse
from marketing_pipelines.warehouse.duckdb import DuckDBWarehouse

__all__ = ["DuckDBWarehouse", "Warehouse"]
