"""Measure land-to-Iterable latency of trial signups under `dagster dev` (daemon, sensor, run queue) and the emulator.

    python -m devtools.measure_signup_latency --samples 5

Builds a small warehouse in a temporary folder (sample data + `dbt build`), starts the loopback Iterable emulator and
`dagster dev` on it, lands one warm-up file, then lands ``--samples`` files at random moments within the sensor
interval and times each from the file's atomic rename into `LANDING_DIR/trial_signups/` to the emulator accepting
its events (and the profile update before them). Prints JSON.

`--during-daily-run` lands each file while `refresh_marketing_data_job` is in progress (launched through the run
queue when none is): the signup run overlaps it and waits only while a daily step holds the `warehouse` pool.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from devtools.iterable_emulator import IterableEmulator
from marketing_pipelines.defs.signups.sensors import SENSOR_INTERVAL_SECONDS
from marketing_pipelines.paths import DBT_PROJECT_DIR, PROJECT_ROOT
from marketing_pipelines.sync.iterable import iterable_event_id

API_KEY = "latency-measurement-key"
#: Landing to accepted by Iterable, for every sample.
GOAL_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def signup_line(event_id: str, user_id: int) -> str:
    return json.dumps(
        {
            "event_id": event_id,
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "email": f"{event_id}@example.com",
            "user_id": user_id,
            "namespace_id": None,
            "company": "Acme",
            "companyNamespace": True,
            "country": "Germany",
            "employeeBucket": "100-499",
            "firstName": "Jane",
            "lastName": "O'Brien",
            "latest_trial_start_date": time.strftime("%Y-%m-%d", time.gmtime()),
            "signupReason": "I want to store my code",
            "userRole": "software_developer",
        }
    )


def land(landing: Path, name: str, event_ids: list[str]) -> float:
    """Write a file next to its folder and rename it into place (how upstream tools should land files)."""
    folder = landing / "trial_signups"
    folder.mkdir(parents=True, exist_ok=True)
    staging = landing / f".{name}.tmp"
    lines = (signup_line(event_id, 9_000_000 + n) + "\n" for n, event_id in enumerate(event_ids))
    staging.write_text("".join(lines), encoding="utf-8")
    os.replace(staging, folder / name)
    return time.monotonic()


def wait_for(emulator: IterableEmulator, event_ids: list[str], timeout: float) -> tuple[float, float]:
    """Monotonic times at which every profile update, then every event of ``event_ids``, had been accepted."""
    emails = {f"{event_id}@example.com" for event_id in event_ids}
    wanted = {iterable_event_id(f"trial_signups:{event_id}") for event_id in event_ids}
    deadline = time.monotonic() + timeout
    profiles_at = None
    while time.monotonic() < deadline:
        if profiles_at is None and emails <= set(emulator.users):
            profiles_at = time.monotonic()
        if wanted <= set(emulator.events):
            return profiles_at or time.monotonic(), time.monotonic()
        time.sleep(0.1)
    raise TimeoutError(f"events {sorted(event_ids)} did not reach the emulator within {timeout:.0f} s")


def prepare_warehouse(env: dict[str, str], users: int) -> None:
    python = sys.executable
    subprocess.run(
        [python, "-m", "marketing_pipelines.sample_data", "--users", str(users), "--replace"],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    dbt = str(Path(python).with_name("dbt"))
    subprocess.run(
        [dbt, "build", "--profiles-dir", ".", "--quiet"],
        cwd=DBT_PROJECT_DIR,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def run_status(home: Path, run_id: str) -> str:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        return run.status.value if run else "MISSING"


def ensure_daily_run(env: dict[str, str], home: Path, timeout: float = 300) -> str:
    """The id of a started `refresh_marketing_data_job` run: the one in progress, else one launched now (through
    the run queue, as the schedule does) and waited for until it started."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
        filters = dg.RunsFilter(job_name="refresh_marketing_data_job", statuses=active)
        if not instance.get_runs(filters=filters, limit=1):
            subprocess.run(
                ["dagster", "job", "launch", "-w", "workspace.yaml", "-j", "refresh_marketing_data_job"],
                cwd=PROJECT_ROOT,
                env={**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"},
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            started = instance.get_runs(
                filters=dg.RunsFilter(job_name="refresh_marketing_data_job", statuses=[dg.DagsterRunStatus.STARTED]),
                limit=1,
            )
            if started:
                return started[0].run_id
            time.sleep(0.5)
    raise TimeoutError("the daily run did not start")


def measure(samples: int, users: int, seed: int, timeout: float, *, during_daily_run: bool = False) -> dict[str, Any]:
    rng = random.Random(seed)
    with (
        tempfile.TemporaryDirectory(prefix="signup-latency-", ignore_cleanup_errors=True) as tmp,
        IterableEmulator(api_key=API_KEY) as emulator,
    ):
        root = Path(tmp)
        home = root / "dagster_home"
        home.mkdir()
        shutil.copyfile(PROJECT_ROOT / "instance" / "dagster.yaml", home / "dagster.yaml")
        landing = root / "landing"
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "DUCKDB_PATH": str(root / "warehouse.duckdb"),
            "LANDING_DIR": str(landing),
            "MARKETING_WAREHOUSE": "duckdb",
            "ITERABLE_API_KEY": API_KEY,
            "ITERABLE_BASE_URL": emulator.base_url,
        }
        env["LANDING_DIR"] = str(root / "sample-landing")  # sample data lands its files elsewhere
        prepare_warehouse(env, users)
        env["LANDING_DIR"] = str(landing)
        log = (root / "dagster-dev.log").open("w")
        started = time.monotonic()
        server = subprocess.Popen(
            ["dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(free_port())],
            cwd=PROJECT_ROOT,
            env={**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            warm_landed = land(landing, "warm-up.jsonl", ["latency-warm-up"])
            _, warm_done = wait_for(emulator, ["latency-warm-up"], timeout)
            results = []
            for sample in range(samples):
                daily = ensure_daily_run(env, home) if during_daily_run else None
                time.sleep(rng.uniform(0, SENSOR_INTERVAL_SECONDS))
                event_ids = [f"latency-{sample}-{i}" for i in range(rng.randint(1, 3))]
                landed = land(landing, f"sample-{sample}.jsonl", event_ids)
                profiles_at, events_at = wait_for(emulator, event_ids, timeout)
                results.append(
                    {
                        "events": len(event_ids),
                        "profiles_seconds": round(profiles_at - landed, 1),
                        "events_seconds": round(events_at - landed, 1),
                    }
                )
                if daily is not None:  # was the daily run still going when the events were in?
                    results[-1]["daily_run_in_progress_when_accepted"] = run_status(home, daily) == "STARTED"
                print(json.dumps({"sample": sample, **results[-1]}), file=sys.stderr, flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            log.close()
        latencies = [r["events_seconds"] for r in results]
        return {
            "during_daily_run": during_daily_run,
            "samples": results,
            "sensor_interval_seconds": SENSOR_INTERVAL_SECONDS,
            "latency_seconds": {
                "min": min(latencies),
                "median": statistics.median(latencies),
                "max": max(latencies),
            },
            "goal_seconds": GOAL_SECONDS,
            "warm_up_seconds": round(warm_done - warm_landed, 1),
            "dagster_dev_start_to_first_event_seconds": round(warm_done - started, 1),
            "events_accepted": len(emulator.events),
            "max_deliveries_per_event": max(emulator.event_receipts.values()),
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="files landed and timed (default 5)")
    parser.add_argument("--users", type=int, default=500, help="sample-data users in the warehouse (default 500)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for one file's events")
    parser.add_argument(
        "--during-daily-run",
        action="store_true",
        help="land each file while refresh_marketing_data_job runs (launched when none is in progress)",
    )
    args = parser.parse_args(argv)
    figures = measure(args.samples, args.users, args.seed, args.timeout, during_daily_run=args.during_daily_run)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
