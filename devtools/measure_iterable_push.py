"""Measure the Iterable user push against the loopback emulator at Iterable's documented 5 requests/s.

    python -m devtools.measure_iterable_push --users 100000
    python -m devtools.measure_iterable_push --users 100000 --sample

Prints JSON: accepted users per second and its fraction of the ceiling (rate limit times batch size), requests sent
by a rerun with nothing changed, records sent by a rerun with 1% changed, and peak resident memory.

`--sample` pushes the real payloads instead of the synthetic ones: the sample generator's contacts and signup events
for `--users` GitLab users, landed, ingested and built into the audiences by dbt, then the user push and the signup
profile push (each at the 5 requests/s ceiling of `users/bulkUpdate`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, DEFAULT_USERS_PER_REQUEST, IterableClient
from marketing_pipelines.sync import Api, run_sync
from marketing_pipelines.sync.iterable import SIGNUP_PROFILES, USER_AUDIENCE, USERS
from marketing_pipelines.warehouse import DuckDBWarehouse

RATE_LIMIT = 5


def build_audience(warehouse: DuckDBWarehouse, users: int) -> None:
    """A synthetic audience of `users` rows with a realistic namespace payload, built inside DuckDB."""
    warehouse.execute(
        [
            "create schema if not exists audiences",
            f"""create or replace table {USER_AUDIENCE.table} as
            select
                'user' || lpad(cast(i as varchar), 7, '0') || '@example.com' as email,
                cast(i as varchar) as user_id,
                json_object(
                    'namespaces', json_array(json_object('NAMESPACE_ID', i, 'USER_ACCESS_LEVEL', 50,
                        'GITLAB_PLAN_TITLE', 'Ultimate Trial', 'IS_ACTIVE_TRIAL', true)),
                    'leadStatus', 'MQL', 'isMql', true
                ) as data_fields
            from range({users}) as t(i)""",
        ]
    )


def measure(users: int, workdir: Path) -> dict[str, float | int]:
    warehouse = DuckDBWarehouse(workdir / "push.duckdb")
    build_audience(warehouse, users)
    with IterableEmulator(api_key="bench", rate_limits={BULK_UPDATE_USERS: RATE_LIMIT}) as emulator:

        def sync(run_id: str):
            client = IterableClient("bench", emulator.base_url, bulk_update_per_second=RATE_LIMIT)
            return run_sync(warehouse, USERS, Api(client), run_id=run_id)

        started = time.monotonic()
        full = sync("full")
        seconds = time.monotonic() - started
        unchanged = sync("unchanged")
        warehouse.execute(
            f"update {USER_AUDIENCE.table} set data_fields = replace(cast(data_fields as varchar), 'MQL', 'Accepted') "
            "where cast(user_id as bigint) % 100 = 7"
        )
        changed = sync("one-percent")
    ceiling = RATE_LIMIT * DEFAULT_USERS_PER_REQUEST
    return {
        "users": users,
        "seconds": round(seconds, 2),
        "accepted": full.accepted,
        "requests": full.requests,
        "accepted_per_second": round(full.accepted / seconds, 1),
        "ceiling_per_second": ceiling,
        "fraction_of_ceiling": round(full.accepted / seconds / ceiling, 3),
        "throttled_429": emulator.status_counts.get(429, 0),
        "rerun_unchanged_requests": unchanged.requests,
        "rerun_one_percent_sent": changed.sent,
        "one_percent_changed": len(range(7, users, 100)),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def build_sample_audiences(warehouse_path: Path, users: int, landing: Path) -> None:
    """The real audiences: sample data for `users` GitLab users, its signup files ingested, the audiences built."""
    from marketing_pipelines.paths import DBT_PROJECT_DIR
    from marketing_pipelines.sample_data.generator import EVENT_KINDS, generate
    from marketing_pipelines.sample_data.loader import landing_files, write_sample_data
    from marketing_pipelines.signups.ingest import ensure_tables, ingest_files

    warehouse = DuckDBWarehouse(warehouse_path)
    write_sample_data(generate(users=users), warehouse, landing, replace=True)
    ensure_tables(warehouse)
    for kind in EVENT_KINDS:
        for _ in ingest_files(warehouse, landing_files(landing, [kind])):
            pass
    dbt = str(Path(sys.executable).with_name("dbt"))
    env = {**os.environ, "MARKETING_WAREHOUSE": "duckdb", "DUCKDB_PATH": str(warehouse_path)}
    select = ["--select", "+iterable_user_audience", "+iterable_trial_events"]
    subprocess.run(
        [dbt, "build", "--quiet", "--exclude-resource-type", "test", "--profiles-dir", ".", *select],
        cwd=DBT_PROJECT_DIR,
        env=env,
        check=True,
    )


def measure_sample(users: int, workdir: Path) -> dict[str, float | int]:
    """The user push and the signup profile push of the sample audiences, each from an empty sync state."""
    warehouse_path = workdir / "sample.duckdb"
    build_sample_audiences(warehouse_path, users, workdir / "landing")
    warehouse = DuckDBWarehouse(warehouse_path)
    ceiling = RATE_LIMIT * DEFAULT_USERS_PER_REQUEST
    figures: dict[str, float | int] = {"gitlab_users": users}
    for name, destination in (("users", USERS), ("signup_profiles", SIGNUP_PROFILES)):
        with IterableEmulator(api_key="bench", rate_limits={BULK_UPDATE_USERS: RATE_LIMIT}) as emulator:
            client = IterableClient("bench", emulator.base_url, bulk_update_per_second=RATE_LIMIT)
            started = time.monotonic()
            report = run_sync(warehouse, destination, Api(client), run_id=f"sample-{name}")
            seconds = time.monotonic() - started
            body_bytes = [len(json.dumps(body, separators=(",", ":")).encode()) for _, body in emulator.received_bodies]
        figures.update(
            {
                f"{name}_accepted": report.accepted,
                f"{name}_requests": report.requests,
                f"{name}_mean_body_kb": round(sum(body_bytes) / max(len(body_bytes), 1) / 1024, 1),
                f"{name}_seconds": round(seconds, 2),
                f"{name}_fraction_of_ceiling": round(report.accepted / seconds / ceiling, 3),
                f"{name}_throttled_429": emulator.status_counts.get(429, 0),
            }
        )
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sample", action="store_true", help="push the sample generator's real audiences")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        figures = (measure_sample if args.sample else measure)(args.users, Path(workdir))
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
