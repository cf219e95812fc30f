"""Names shared across domains: owners, groups, the warehouse concurrency pool."""

from __future__ import annotations

OWNER = "team:marketing-data"

# Every step that writes the warehouse runs in this pool; dagster.yaml limits it to one at a time because
# DuckDB allows a single writing process.
WAREHOUSE_POOL = "warehouse"

WAREHOUSE_KINDS = {"duckdb", "snowflake"}
