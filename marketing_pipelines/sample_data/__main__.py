"""CLI: ``python -m marketing_pipelines.sample_data`` generates sample data into the warehouse and landing files."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dagster import Failure

from marketing_pipelines.paths import DEFAULT_LANDING_DIR, resolve_project_path
from marketing_pipelines.sample_data.generator import EVENT_KINDS, TABLE_NAMES, generate
from marketing_pipelines.sample_data.loader import (
    empty_landing_kinds,
    empty_raw_tables,
    landing_as_of,
    write_sample_data,
)
from marketing_pipelines.warehouse import DuckDBWarehouse, Warehouse
from marketing_pipelines.warehouse.duckdb import WarehouseFileError


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m marketing_pipelines.sample_data",
        description="Generate deterministic GitLab-like marketing sample data into the warehouse selected by "
        "MARKETING_WAREHOUSE (schema raw) and landing JSONL files.",
    )
    parser.add_argument("--users", type=int, default=3000, help="number of GitLab users (default: 3000)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    parser.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        default=None,
        help="reference date YYYY-MM-DD (default: today UTC)",
    )
    parser.add_argument(
        "--duckdb-path", type=Path, default=None, help="write to this DuckDB file (default: the configured warehouse)"
    )
    parser.add_argument("--landing-dir", type=Path, default=None, help="default: $LANDING_DIR or data/landing")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--if-empty",
        action="store_true",
        help="fill only what is empty: missing or empty raw tables, landing folders without files; keep the rest",
    )
    mode.add_argument("--replace", action="store_true", help="replace existing raw tables and landing files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code. A damaged warehouse file is a one-line error, not a traceback."""
    args = _parse_args(argv)
    landing_dir: Path = args.landing_dir or resolve_project_path(os.environ.get("LANDING_DIR", DEFAULT_LANDING_DIR))
    try:
        with _warehouse(args.duckdb_path) as warehouse:
            return _load(args, warehouse, landing_dir)
    except (WarehouseFileError, Failure) as error:
        print(f"error: {error.description if isinstance(error, Failure) else error}", file=sys.stderr)
        return 1


def _warehouse(duckdb_path: Path | None) -> Warehouse:
    """The DuckDB file given on the command line, else the warehouse the pipeline uses (MARKETING_WAREHOUSE)."""
    if duckdb_path is not None:
        return DuckDBWarehouse(duckdb_path)
    from marketing_pipelines.resources import warehouse_from_environment

    return warehouse_from_environment()


def _load(args: argparse.Namespace, warehouse: Warehouse, landing_dir: Path) -> int:
    tables, kinds, as_of = list(TABLE_NAMES), list(EVENT_KINDS), args.as_of
    if args.if_empty:  # fill what is empty, keep what is not
        tables, kinds = empty_raw_tables(warehouse), empty_landing_kinds(landing_dir)
        if not tables and not kinds:
            where = f"{warehouse.describe()} has every raw table and {landing_dir} has event files"
            print(f"Skipping sample data: {where} (--if-empty).")
            return 0
        if kept_tables := [name for name in TABLE_NAMES if name not in tables]:
            print(f"Keeping the raw tables {kept_tables} of {warehouse.describe()} (--if-empty).")
        if kept_kinds := [kind for kind in EVENT_KINDS if kind not in kinds]:
            print(f"Keeping the landing files of {kept_kinds} in {landing_dir} (--if-empty).")
            as_of = as_of or landing_as_of(landing_dir)  # raw tables for the same day as the kept files

    started = time.perf_counter()
    data = generate(users=args.users, seed=args.seed, as_of=as_of)
    generated = time.perf_counter()
    try:
        counts = write_sample_data(data, warehouse, landing_dir, replace=args.replace, tables=tables, event_kinds=kinds)
    except FileExistsError as exc:
        print(f"error: {exc}. Use --replace to overwrite or --if-empty to fill only what is empty.", file=sys.stderr)
        return 1
    finished = time.perf_counter()

    print(f"Sample data: users={args.users} seed={args.seed} as_of={data.as_of}")
    width = max(len(name) for name in counts)
    for name, rows in counts.items():
        print(f"  {name:<{width}}  {rows:>10,}")
    print(f"Warehouse: {warehouse.describe()} (schema raw)")
    print(f"Landing: {landing_dir}")
    print(f"Took {generated - started:.1f}s to generate, {finished - generated:.1f}s to write.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
