"""CLI: ``python -m marketing_pipelines.sample_data`` generates sample data into the warehouse and landing files."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from marketing_pipelines.paths import DEFAULT_LANDING_DIR, resolve_project_path
from marketing_pipelines.sample_data.generator import generate
from marketing_pipelines.sample_data.loader import warehouse_is_empty, write_sample_data
from marketing_pipelines.warehouse import DuckDBWarehouse, Warehouse


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
    mode.add_argument("--if-empty", action="store_true", help="skip when the warehouse already has raw data")
    mode.add_argument("--replace", action="store_true", help="replace existing raw tables and landing files")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = _parse_args(argv)
    landing_dir: Path = args.landing_dir or resolve_project_path(os.environ.get("LANDING_DIR", DEFAULT_LANDING_DIR))
    with _warehouse(args.duckdb_path) as warehouse:
        return _load(args, warehouse, landing_dir)


def _warehouse(duckdb_path: Path | None) -> Warehouse:
    """The DuckDB file given on the command line, else the warehouse the pipeline uses (MARKETING_WAREHOUSE)."""
    if duckdb_path is not None:
        return DuckDBWarehouse(duckdb_path)
    from marketing_pipelines.defs.resources import WarehouseResource

    return WarehouseResource().get_warehouse()


def _load(args: argparse.Namespace, warehouse: Warehouse, landing_dir: Path) -> int:
    if args.if_empty and not warehouse_is_empty(warehouse):
        print(f"Skipping sample data: {warehouse.describe()} already has raw.crm_persons (--if-empty).")
        return 0

    started = time.perf_counter()
    data = generate(users=args.users, seed=args.seed, as_of=args.as_of)
    generated = time.perf_counter()
    try:
        counts = write_sample_data(data, warehouse, landing_dir, replace=args.replace)
    except FileExistsError as exc:
        print(f"error: {exc}\nUse --replace to overwrite or --if-empty to skip.", file=sys.stderr)
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
