"""Print where `make run` left its results: warehouse tables with row counts, and the Dagster instance."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

from marketing_pipelines.warehouse import Warehouse

REPORTED_SCHEMAS = ("raw", "staging", "marts", "audiences", "ops")


def print_program_counts(warehouse: Warehouse) -> None:
    """Customer Programs per lifecycle program: accounts, recipients, skipped rows, and what the last syncs sent."""
    from marketing_pipelines.sync.gainsight import COMPANIES, PEOPLE, program_of

    accounts = dict(warehouse.query("select program, count(*) from audiences.gainsight_program_companies group by 1"))
    recipients = {
        program: (n, skipped)
        for program, n, skipped in warehouse.query(
            "select program, count(*), count(skip_reason) from audiences.gainsight_program_recipients group by 1"
        )
    }
    sent: dict[str, Counter[str]] = {COMPANIES.name: Counter(), PEOPLE.name: Counter()}
    if warehouse.table_exists("ops", "outbox"):
        bodies = warehouse.query(
            "select destination, body from ops.outbox where run_id in ("
            "  select run_id from ops.sync_runs where destination in (?, ?)"
            "  qualify row_number() over (partition by destination order by finished_at desc) = 1"
            ") and destination in (?, ?)",
            [COMPANIES.name, PEOPLE.name] * 2,
        )
        for destination, body in bodies:
            sent[destination].update(program_of(record) or "?" for record in json.loads(body)["records"])
    print("Customer Programs (audiences.gainsight_program_*), per program; sent = latest dry-run (ops.outbox):")
    for program in sorted(accounts):
        people, skipped = recipients.get(program, (0, 0))
        print(
            f"  {program:<12} {accounts[program]:>6,} accounts, {people:>7,} recipients ({skipped:,} skipped); "
            f"dry-run sent {sent[COMPANIES.name][program]:,} companies, {sent[PEOPLE.name][program]:,} people"
        )


def main() -> int:
    from marketing_pipelines.resources import warehouse_from_environment

    with warehouse_from_environment() as warehouse:
        return report(warehouse)


def report(warehouse: Warehouse) -> int:
    """Print every table of the project's schemas with its row count, and the latest destination syncs."""
    if not warehouse.table_exists("raw", "crm_persons"):
        print(f"No raw data in {warehouse.describe()}: run `make run` first.", file=sys.stderr)
        return 1
    placeholders = ", ".join("?" for _ in REPORTED_SCHEMAS)
    tables = warehouse.query(  # lower(): Snowflake stores unquoted names upper-case
        "select lower(table_schema), lower(table_name) from information_schema.tables "
        f"where lower(table_schema) in ({placeholders}) "
        "and (table_type = 'BASE TABLE' or lower(table_schema) = 'audiences') order by 1, 2",
        list(REPORTED_SCHEMAS),
    )
    counts = warehouse.row_counts(tables)
    print(f"\nWarehouse: {warehouse.describe()}")
    for schema, table in tables:
        print(f"  {schema}.{table:<42} {counts[(schema, table)]:>10,} rows")
    if warehouse.table_exists("ops", "sync_runs"):
        print("Latest destination syncs (ops.sync_runs):")
        latest = warehouse.query(
            "select destination, mode, considered, unchanged, sent, accepted, rejected, requests, removed, deferred "
            "from ops.sync_runs qualify row_number() over (partition by destination order by finished_at desc) = 1 "
            "order by destination"
        )
        for destination, mode, considered, unchanged, sent, accepted, rejected, requests, removed, deferred in latest:
            print(
                f"  {destination:<24} {mode:<8} considered {considered:,}, unchanged {unchanged:,}, sent {sent:,} "
                f"in {requests:,} requests, accepted {accepted:,}, rejected {rejected:,}, removed {removed or 0:,}, "
                f"deferred {deferred or 0:,}"
            )
        if any(mode == "dry-run" for _, mode, *_ in latest):
            print("  dry-run: no API key set; the request bodies are in ops.outbox")
    if warehouse.table_exists("audiences", "gainsight_program_companies"):
        print_program_counts(warehouse)
    print(
        "Dagster runs and check results: `make dev`, then http://127.0.0.1:3000 "
        f"(DAGSTER_HOME={os.environ.get('DAGSTER_HOME', '')})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
