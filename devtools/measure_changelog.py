"""Measure what the sync changelog and exits cost: bytes per changelog row, and the extra time of a user push.

    python -m devtools.measure_changelog --users 100000

Pushes `--users` synthetic users to the loopback Iterable emulator without pacing (so the warehouse work shows, not
the 5 requests/s limit), once with the changelog and once with its writes left out; then a rerun with 1% changed
and 1% gone (exits). Prints JSON: seconds of each, the changelog's overhead, and its size per row and per 1M rows
(the table copied alone into a fresh DuckDB file).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from devtools.iterable_emulator import IterableEmulator
from devtools.measure_iterable_push import build_audience
from marketing_pipelines.clients.iterable import IterableClient
from marketing_pipelines.sync import Api, engine, run_sync
from marketing_pipelines.sync.iterable import USER_AUDIENCE, USERS
from marketing_pipelines.warehouse import DuckDBWarehouse


@contextmanager
def without_changelog():
    """The engine with its changelog statements replaced by no-ops (the baseline)."""
    with (
        mock.patch.object(engine, "_log_statement", lambda *args: "select 1"),
        mock.patch.object(engine, "_close_changelog", lambda *args: None),
    ):
        yield


def push(warehouse: DuckDBWarehouse, base_url: str, run_id: str) -> tuple[float, Any]:
    client = IterableClient("bench", base_url, bulk_update_per_second=10_000)
    started = time.monotonic()
    report = run_sync(warehouse, USERS, Api(client), run_id=run_id)
    return time.monotonic() - started, report


def bytes_per_row(warehouse: DuckDBWarehouse, workdir: Path) -> tuple[int, int]:
    """Rows of the changelog and the bytes a DuckDB file holding only it grows by."""
    empty, copy = workdir / "empty.duckdb", workdir / "changelog.duckdb"
    for path in (empty, copy):
        DuckDBWarehouse(path).execute("create schema if not exists ops")
    with warehouse.connect() as con:
        con.execute(f"attach '{copy}' as copy")
        con.execute("create table copy.ops.sync_changelog as select * from ops.sync_changelog")
        con.execute("detach copy")
        (rows,) = con.execute("select count(*) from ops.sync_changelog").fetchone()
    return int(rows), copy.stat().st_size - empty.stat().st_size


def measure(users: int, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"users": users}
    with IterableEmulator(api_key="bench", rate_limits={}) as emulator:
        for label in ("without_changelog", "with_changelog"):
            warehouse = DuckDBWarehouse(workdir / f"{label}.duckdb")
            build_audience(warehouse, users)
            if label == "without_changelog":
                with without_changelog():
                    seconds, _ = push(warehouse, emulator.base_url, "full")
            else:
                seconds, _ = push(warehouse, emulator.base_url, "full")
            results[f"full_push_seconds_{label}"] = round(seconds, 2)
            warehouse.execute(
                [
                    f"update {USER_AUDIENCE.table} set data_fields = replace(cast(data_fields as varchar), 'MQL', "
                    "'Accepted') where cast(user_id as bigint) % 100 = 7",
                    f"delete from {USER_AUDIENCE.table} where cast(user_id as bigint) % 100 = 8",
                ]
            )
            if label == "without_changelog":
                with without_changelog():
                    seconds, report = push(warehouse, emulator.base_url, "rerun")
            else:
                seconds, report = push(warehouse, emulator.base_url, "rerun")
            results[f"rerun_seconds_{label}"] = round(seconds, 2)
            results["rerun_changed_removed"] = [report.changed, report.removed]
        rows, size = bytes_per_row(warehouse, workdir)
    full_extra = results["full_push_seconds_with_changelog"] - results["full_push_seconds_without_changelog"]
    results.update(
        changelog_rows=rows,
        changelog_bytes=size,
        changelog_bytes_per_row=round(size / rows, 1),
        changelog_mb_per_1m_rows=round(size / rows * 1_000_000 / 2**20, 1),
        full_push_extra_seconds=round(full_extra, 2),
        full_push_extra_fraction=round(full_extra / results["full_push_seconds_without_changelog"], 3),
        full_push_seconds_at_5_requests_per_second=users / 5_000,
        extra_fraction_at_5_requests_per_second=round(full_extra / (users / 5_000), 3),
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps(measure(args.users, Path(workdir)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
