"""Measure the Iterable user push against the loopback emulator at Iterable's documented 5 requests/s.

    python -m devtools.measure_iterable_push --users 100000

Prints JSON: accepted users per second and its fraction of the ceiling (rate limit times batch size), requests sent
by a rerun with nothing changed, records sent by a rerun with 1% changed, and peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.clients.iterable import BULK_UPDATE_USERS, DEFAULT_USERS_PER_REQUEST, IterableClient
from marketing_pipelines.sync import Api, run_sync
from marketing_pipelines.sync.iterable import USER_AUDIENCE, USERS
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        print(json.dumps(measure(args.users, Path(workdir)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
