"""Print where `make run` left its results: warehouse tables with row counts, and the Dagster instance."""

from __future__ import annotations

import os
import sys

from marketing_pipelines.paths import DEFAULT_DUCKDB_PATH, resolve_project_path
from marketing_pipelines.warehouse import DuckDBWarehouse

REPORTED_SCHEMAS = ("raw", "staging", "marts", "audiences", "ops")


def main() -> int:
    path = resolve_project_path(os.environ.get("DUCKDB_PATH", DEFAULT_DUCKDB_PATH))
    warehouse = DuckDBWarehouse(path)
    if not warehouse.path.exists():
        print(f"No warehouse at {warehouse.path}: run `make run` first.", file=sys.stderr)
        return 1
    placeholders = ", ".join("?" for _ in REPORTED_SCHEMAS)
    tables = warehouse.query(
        "select table_schema, table_name from information_schema.tables "
        f"where table_schema in ({placeholders}) and (table_type = 'BASE TABLE' or table_schema = 'audiences') "
        "order by 1, 2",
        list(REPORTED_SCHEMAS),
    )
    counts = warehouse.row_counts(tables)
    print(f"\nWarehouse: {warehouse.path.resolve()} (DuckDB)")
    for schema, table in tables:
        print(f"  {schema}.{table:<42} {counts[(schema, table)]:>10,} rows")
    if warehouse.table_exists("ops", "sync_runs"):
        print("Latest destination syncs (ops.sync_runs):")
        latest = warehouse.query(
            "select destination, mode, considered, unchanged, sent, accepted, rejected, requests "
            "from ops.sync_runs qualify row_number() over (partition by destination order by finished_at desc) = 1 "
            "order by destination"
        )
        for destination, mode, considered, unchanged, sent, accepted, rejected, requests in latest:
            print(
                f"  {destination:<24} {mode:<8} considered {considered:,}, unchanged {unchanged:,}, sent {sent:,} "
                f"in {requests:,} requests, accepted {accepted:,}, rejected {rejected:,}"
            )
        if any(mode == "dry-run" for _, mode, *_ in latest):
            print("  dry-run: no API key set; the request bodies are in ops.outbox")
    print(
        "Dagster runs and check results: `make dev`, then http://127.0.0.1:3000 "
        f"(DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '')})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
