"""Print where `make run` left its results: warehouse tables with row counts, and the Dagster instance."""

from __future__ import annotations

import os
import sys

from marketing_pipelines.warehouse import Warehouse

REPORTED_SCHEMAS = ("raw", "staging", "marts", "audiences", "ops")


def main() -> int:
    from marketing_pipelines.defs.resources import WarehouseResource

    with WarehouseResource().get_warehouse() as warehouse:
        return report(warehouse)


def report(warehouse: Warehouse) -> int:
    """Print every table of the project's schemas with its row count, and the latest destination syncs."""
    if not warehouse.table_exists("raw", "crm_persons"):
        print(f"No raw data in {warehouse.describe()}: run `make run` first.", file=sys.stderr)
        return 1
    placeholders = ", ".join("?" for _ in REPORTED_SCHEMAS)
    tables = warehouse.query(  # lower(): Snowflake stores unquoted names upper-case
        "select lower(table_schema), lower(table_name) from information_schema.tables "
        f"where lower(table_schema) in ({placeholders}) and table_type = 'BASE TABLE' order by 1, 2",
        list(REPORTED_SCHEMAS),
    )
    counts = warehouse.row_counts(tables)
    print(f"\nWarehouse: {warehouse.describe()}")
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
