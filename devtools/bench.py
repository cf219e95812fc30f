"""`make bench` / `make chaos`: reproducible performance and reliability figures against the documented targets.

    python -m devtools.bench [--users 1000000 | --quick] [--out bench/results.json]
    python -m devtools.bench --chaos [--chaos-users 100000]

The bench generates N contacts into a scratch DuckDB, builds the dbt project once with plain `dbt build` and once
through Dagster (the daily `refresh_marketing_data_job`, live against the loopback Iterable emulator with
Iterable's documented limits, in its own process), then measures change-only reruns of `iterable_user_sync`, the
sensor tick with 10,000 seen files and the definitions load time. Every figure sits next to its goal in the JSON
and Markdown written to ``--out``. Each measured process runs as a subprocess, so its peak memory is its own
(``wait4``), and a sampler (`peak_launcher.py`) says which process and step held it.

The chaos run pushes ``--chaos-users`` users and as many events through an emulator answering 20% 429, 5% 500
and 2% slow, SIGKILLs the sync process at a random point, reruns it, and counts records lost, events duplicated,
retries and the final rejection backlog.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from marketing_pipelines.paths import DBT_PROJECT_DIR, PROJECT_ROOT

API_KEY = "bench-api-key"
MESSAGE_TYPE_ID = "48213"
BULK_UPDATE_CEILING = 5 * 1_000  # requests/s x users/request
DEFAULT_USERS = 1_000_000
QUICK_USERS = 50_000
SEEN_FILES = 10_000

#: Goals of a run at DEFAULT_USERS contacts; `goals` adapts the size-dependent ones to the run's size.
GOALS = {
    "orchestration_overhead_ratio": ("<=", 1.15),
    "push_fraction_of_ceiling": (">=", 0.95),
    "signup_profile_push_fraction_of_ceiling": (">=", 0.95),
    "rerun_unchanged_requests": ("<=", 0),
    "rerun_one_percent_sent_over_changed": ("<=", 1.05),
    "pipeline_peak_rss_mb": ("<=", 1024),
    "sensor_tick_seconds": ("<", 1.0),
    "definitions_load_ratio": ("<=", 1.3),
    "changelog_extra_fraction_of_sync": ("<=", 0.10),
    "signup_latency_max_seconds": ("<=", 30),
    "scale_largest_peak_rss_mb": ("<=", 2048),
    "scale_largest_seconds_per_contact_over_main": ("<=", 1.0),
    "chaos_records_lost": ("<=", 0),
    "chaos_events_duplicated": ("<=", 0),
}
#: The scales the full bench also runs the daily pipeline at (time and peak memory per contact as size grows).
DEFAULT_SCALES = (100_000, 3_000_000)
SIGNUP_SAMPLES = 10


def goals(users: int) -> dict[str, tuple[str, float]]:
    """The goals of a run at `users` contacts: the Dagster overhead may be 1.3x below 1M contacts (fixed costs
    weigh more), and a run above 1M must stay within 2 GB rather than 1 GB."""
    adapted = dict(GOALS)
    if users < DEFAULT_USERS:
        adapted["orchestration_overhead_ratio"] = ("<=", 1.3)
    if users > DEFAULT_USERS:
        adapted["pipeline_peak_rss_mb"] = ("<=", 2048)
    return adapted


# -- processes ----------------------------------------------------------------------------------------------------


#: Starts every measured command and samples where its memory peaked (see the module: a child of the bench would
#: inherit the bench's own high-water mark).
PEAK_LAUNCHER = Path(__file__).with_name("peak_launcher.py")


def run_measured(args: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path) -> tuple[float, int]:
    """Run a command to completion; (wall seconds, peak resident MB of it and its children). Fails loudly."""
    peak_file = peak_path(log)
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.run(
            [sys.executable, str(PEAK_LAUNCHER), str(peak_file), *args], cwd=cwd, env=env, stdout=out,
            stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    seconds = time.monotonic() - started
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(args[:4])} ... exited {process.returncode}; last lines of {log}:\n{tail}")
    return seconds, json.loads(peak_file.read_text())["maxrss_kb"] // 1024


def peak_path(log: Path) -> Path:
    """Where `run_measured` writes the latest command's peak memory and its processes' peaks."""
    return log.with_name(f"{log.stem}.peak.json")


def tool(name: str) -> str:
    """An executable of this virtual environment (dbt, dagster)."""
    return str(Path(sys.executable).with_name(name))


# -- stages -------------------------------------------------------------------------------------------------------


def generate(work: Path, users: int, env: dict[str, str], log: Path) -> dict[str, Any]:
    seconds, rss = run_measured(
        [sys.executable, "-m", "marketing_pipelines.sample_data", "--users", str(users), "--replace",
         "--duckdb-path", str(work / "generated.duckdb"), "--landing-dir", str(work / "landing")],
        env=env, cwd=PROJECT_ROOT, log=log,
    )  # fmt: skip
    return {"sample_data_seconds": round(seconds, 1), "sample_data_peak_rss_mb": rss}


def plain_dbt_build(work: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Plain dbt on copies of the generated warehouse: one `dbt build`, and the same three builds the pipeline runs
    (staging and the Initial Source history, then the other marts, then audiences; the blocking rule checks sit
    between them in Dagster)."""
    from marketing_pipelines.defs.transform.assets import (
        AUDIENCES_SELECTION,
        HISTORY_SELECTION,
        MARTS_SELECTION,
        STAGING_SELECTION,
    )

    database = work / "plain.duckdb"
    build = [tool("dbt"), "build", "--profiles-dir", "."]
    db_env = {**env, "DUCKDB_PATH": str(database)}
    shutil.copyfile(work / "generated.duckdb", database)
    single, rss = run_measured(build, env=db_env, cwd=DBT_PROJECT_DIR, log=log)
    shutil.copyfile(work / "generated.duckdb", database)
    steps = (
        ["--select", STAGING_SELECTION],
        ["--select", MARTS_SELECTION, "--exclude", HISTORY_SELECTION],
        ["--select", AUDIENCES_SELECTION],
    )
    step_seconds = [run_measured([*build, *step], env=db_env, cwd=DBT_PROJECT_DIR, log=log)[0] for step in steps]
    database.unlink()
    return {
        "plain_dbt_build_seconds": round(single, 1),
        "plain_dbt_step_builds_seconds": round(sum(step_seconds), 1),
        "plain_dbt_peak_rss_mb": rss,
    }


def step_intervals(home: Path) -> dict[str, tuple[float, float]]:
    """(start, end) wall-clock time of every step of the latest run in the instance at ``home``."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (run,) = instance.get_runs(limit=1)
        started: dict[str, float] = {}
        intervals: dict[str, tuple[float, float]] = {}
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                started[event.step_key] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
                intervals[event.step_key] = (started[event.step_key], record.timestamp)
        return intervals


def peak_step(peaks: dict[str, Any], intervals: dict[str, tuple[float, float]]) -> str:
    """Which process held the most memory, and (for the Dagster process) which steps ran at its peak."""
    top = peaks["processes"][0] if peaks.get("processes") else None
    if top is None:
        return "unknown"
    at = float(top["at"])
    running = sorted(step for step, (start, end) in intervals.items() if start - 0.5 <= at <= end + 0.5)
    process = "dbt" if "dbt" in {Path(token).name for token in top["command"].split()[:3]} else "dagster"
    return f"{process} process, {int(top['peak_kb']) // 1024} MB, during {', '.join(running) or 'no step'}"


def dagster_pipeline(work: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    """The daily job through Dagster, live against the emulator; dbt step time, wall time, peak memory, push pace."""
    from marketing_pipelines.warehouse import DuckDBWarehouse

    seconds, rss = run_measured(
        [tool("dagster"), "job", "execute", "-m", "marketing_pipelines.definitions", "-a", "defs",
         "-j", "refresh_marketing_data_job"],
        env=env, cwd=PROJECT_ROOT, log=log,
    )  # fmt: skip
    intervals = step_intervals(Path(env["DAGSTER_HOME"]))
    steps = {step: end - start for step, (start, end) in intervals.items()}
    dbt_seconds = sum(v for k, v in steps.items() if k.endswith("_dbt_models"))
    warehouse = DuckDBWarehouse(env["DUCKDB_PATH"])
    latest_run = (
        "select accepted, seconds, requests, retries from ops.sync_runs where destination = '{}' "
        "order by finished_at desc limit 1"
    )
    ((accepted, push_seconds, requests, retries),) = warehouse.query(latest_run.format("iterable_users"))
    ((profiles, profile_seconds, _, _),) = warehouse.query(latest_run.format("iterable_signup_profiles"))
    syncs = warehouse.query_df(
        "select destination, mode, considered, sent, accepted, rejected, requests, retries, round(seconds, 1) as "
        "seconds from ops.sync_runs order by destination"
    ).to_dict("records")
    return {
        "pipeline_seconds": round(seconds, 1),
        "pipeline_peak_rss_mb": rss,
        "pipeline_peak_rss_where": peak_step(json.loads(peak_path(log).read_text()), intervals),
        "dagster_dbt_steps_seconds": round(dbt_seconds, 1),
        "push_users_accepted": int(accepted),
        "push_seconds": round(float(push_seconds), 2),
        "push_requests": int(requests),
        "push_retries": int(retries),
        "push_accepted_per_second": round(accepted / push_seconds, 1) if push_seconds else None,
        "push_ceiling_per_second": BULK_UPDATE_CEILING,
        "push_fraction_of_ceiling": fraction_of_ceiling(accepted, push_seconds),
        "signup_profiles_accepted": int(profiles),
        "signup_profile_push_seconds": round(float(profile_seconds), 2),
        "signup_profile_push_fraction_of_ceiling": fraction_of_ceiling(profiles, profile_seconds),
        "syncs": syncs,
        "slowest_steps": dict(sorted(((k, round(v, 1)) for k, v in steps.items()), key=lambda kv: -kv[1])[:8]),
        # every step of the daily job runs in the `warehouse` pool: a signup landing meanwhile waits this long at most
        "longest_warehouse_step_seconds": round(max(steps.values()), 1),
    }


def fraction_of_ceiling(accepted: int, seconds: float) -> float | None:
    """Accepted users per second of a `users/bulkUpdate` push over Iterable's ceiling (5 requests/s x 1,000).
    A push of fewer than 5,000 users takes less than a second of the limit: its pace is meaningless (None)."""
    if not seconds or accepted < BULK_UPDATE_CEILING:
        return None
    return round(accepted / float(seconds) / BULK_UPDATE_CEILING, 3)


def change_only_reruns(env: dict[str, str], log: Path) -> dict[str, Any]:
    """`iterable_user_sync` again with nothing changed, then with 1% of the audience changed."""
    from marketing_pipelines.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(env["DUCKDB_PATH"])
    materialize = [tool("dagster"), "asset", "materialize", "-m", "marketing_pipelines.definitions", "-a", "defs",
                   "--select", "iterable_user_sync"]  # fmt: skip
    latest = (
        "select sent, requests from ops.sync_runs where destination = 'iterable_users' "
        "order by finished_at desc limit 1"
    )
    run_measured(materialize, env=env, cwd=PROJECT_ROOT, log=log)
    ((unchanged_sent, unchanged_requests),) = warehouse.query(latest)
    ((audience,),) = warehouse.query("select count(*) from audiences.iterable_user_audience")
    warehouse.execute(
        "update audiences.iterable_user_audience set data_fields = "
        "json_merge_patch(data_fields, '{\"benchChanged\": true}') where hash(email) % 100 = 0"
    )
    ((changed,),) = warehouse.query(
        "select count(*) from audiences.iterable_user_audience where json_extract(data_fields, '$.benchChanged')"
    )
    run_measured(materialize, env=env, cwd=PROJECT_ROOT, log=log)
    ((changed_sent, changed_requests),) = warehouse.query(latest)
    return {
        "audience_users": int(audience),
        "rerun_unchanged_sent": int(unchanged_sent),
        "rerun_unchanged_requests": int(unchanged_requests),
        "rerun_one_percent_changed": int(changed),
        "rerun_one_percent_sent": int(changed_sent),
        "rerun_one_percent_requests": int(changed_requests),
        "rerun_one_percent_sent_over_changed": round(changed_sent / changed, 4) if changed else None,
    }


def changelog_cost(work: Path, users: int) -> dict[str, Any]:
    """What `ops.sync_changelog` costs: MB per 1M rows, and the extra seconds of a full user push (at most 100,000
    users, unpaced) over the same push without its changelog writes, as a share of that push at Iterable's ceiling
    (the sync time users see). See `devtools/measure_changelog.py`."""
    from devtools.measure_changelog import measure

    folder = work / "changelog"
    folder.mkdir(exist_ok=True)
    measured = measure(min(users, 100_000), folder)
    return {
        "changelog_users": measured["users"],
        "changelog_bytes_per_row": measured["changelog_bytes_per_row"],
        "changelog_mb_per_1m_rows": measured["changelog_mb_per_1m_rows"],
        "changelog_extra_seconds": measured["full_push_extra_seconds"],
        "changelog_extra_fraction_of_sync": max(0.0, measured["extra_fraction_at_5_requests_per_second"]),
    }


def sensor_tick(work: Path, files: int = SEEN_FILES, repeats: int = 5) -> dict[str, Any]:
    """Median seconds of a `trial_signup_sensor` tick that finds ``files`` landed files all already seen."""
    import dagster as dg

    from marketing_pipelines.defs.signups.sensors import trial_signup_sensor
    from marketing_pipelines.resources import WarehouseResource

    landing = work / "tick-landing"
    # the first tick reads the ingestion ledger (empty here); later ticks know every file from the cursor
    resources = {"warehouse": WarehouseResource(kind="duckdb", duckdb_path=str(work / "tick-ledger.duckdb"))}
    for kind in ("trial_signups", "free_registrations"):
        (landing / kind).mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (landing / ("trial_signups" if i % 2 else "free_registrations") / f"f{i:05d}.jsonl").write_text("{}\n")
    previous = os.environ.get("LANDING_DIR")
    os.environ["LANDING_DIR"] = str(landing)
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                first = trial_signup_sensor(context)
            assert len(first.run_requests) == files, "the first tick must request every file"
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                with dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources) as context:
                    result = trial_signup_sensor(context)
                timings.append(time.perf_counter() - started)
                assert not result.run_requests, "a tick over seen files must request nothing"
    finally:
        if previous is None:
            os.environ.pop("LANDING_DIR", None)
        else:
            os.environ["LANDING_DIR"] = previous
    shutil.rmtree(landing)
    return {"sensor_seen_files": files, "sensor_tick_seconds": round(statistics.median(timings), 3)}


def definitions_load(env: dict[str, str], repeats: int = 5) -> dict[str, Any]:
    """Medians of loading the definitions vs a bare `import dagster, dagster_dbt`, alternating, in new processes."""
    commands = {
        "bare": "import dagster, dagster_dbt",
        "definitions": "from marketing_pipelines.definitions import defs; defs().get_repository_def()",
    }
    timings: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, code in commands.items():
            started = time.monotonic()
            subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, check=True)
            timings[name].append(time.monotonic() - started)
    bare, loaded = statistics.median(timings["bare"]), statistics.median(timings["definitions"])
    return {
        "bare_import_seconds": round(bare, 2),
        "definitions_load_seconds": round(loaded, 2),
        "definitions_load_ratio": round(loaded / bare, 2),
    }


# -- chaos --------------------------------------------------------------------------------------------------------


def build_chaos_audiences(database: Path, users: int) -> None:
    """`users` synthetic users and as many signup events, in the tables the Iterable syncs read."""
    from devtools.measure_iterable_push import build_audience
    from marketing_pipelines.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(database)
    build_audience(warehouse, users)
    warehouse.execute(
        [
            "create schema if not exists staging",
            # what the signup pushes join: no personal free registration, no unsubscribe, no CRM opt-out
            """create or replace table staging.stg_signups__free_registration_events as
            select cast(null as varchar) as event_key, cast(null as bigint) as user_id,
                cast(null as boolean) as is_company_namespace
            where false""",
            "create or replace table staging.stg_marketo__unsubscribes as "
            "select cast(null as varchar) as email where false",
            "create schema if not exists marts",
            "create or replace table marts.marketing_contacts as "
            "select cast(null as varchar) as email, cast(null as boolean) as is_opted_in where false",
            f"""create or replace table audiences.iterable_trial_events as
            select
                'trial_signups:evt-' || lpad(cast(i as varchar), 7, '0') as event_key,
                'trial_signups' as event_kind,
                'evt-' || lpad(cast(i as varchar), 7, '0') as event_id,
                'user' || lpad(cast(i as varchar), 7, '0') || '@example.com' as email,
                'saasTrial' as event_name,
                1763900000 + i as created_at,
                json_object('company', 'Acme ' || cast(i % 97 as varchar), 'employeeBucket', '100-499') as data_fields
            from range({users}) as t(i)""",
        ]
    )


def chaos_worker(database: Path, base_url: str) -> None:
    """One sync process: users, then events, through the real client and engine (the chaos run kills it)."""
    from marketing_pipelines.clients.iterable import IterableClient
    from marketing_pipelines.sync import Api, run_sync
    from marketing_pipelines.sync.iterable import TRIAL_EVENTS, USERS
    from marketing_pipelines.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(database)
    run_id = f"chaos-{os.getpid()}"
    with IterableClient(API_KEY, base_url) as client:
        run_sync(warehouse, USERS, Api(client), run_id=run_id)
    with IterableClient(API_KEY, base_url) as client:
        run_sync(warehouse, TRIAL_EVENTS, Api(client), run_id=run_id)


def chaos(work: Path, users: int, seed: int, log: Path) -> dict[str, Any]:
    from devtools.iterable_emulator import IterableEmulator
    from marketing_pipelines.sync.iterable import iterable_event_id
    from marketing_pipelines.warehouse import DuckDBWarehouse

    rng = random.Random(seed)
    database = work / "chaos.duckdb"
    build_chaos_audiences(database, users)
    faults = {"429": 0.20, "500": 0.05, "slow": 0.02}
    worker = [sys.executable, "-m", "devtools.bench", "--chaos-worker", str(database)]
    with IterableEmulator(api_key=API_KEY, fault_rates=faults, seed=seed, slow_seconds=2.0) as emulator:
        env = {**os.environ, "CHAOS_BASE_URL": emulator.base_url}
        # a point inside the expected run: users at 5 and events at 10 requests/s of 1,000, plus retries
        kill_after = rng.uniform(1.0, max(2.0, 1.4 * (users / 5_000 + users / 10_000)))
        with log.open("ab") as out:
            first = subprocess.Popen(worker, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                first.wait(timeout=kill_after)
                killed = False
            except subprocess.TimeoutExpired:
                first.send_signal(signal.SIGKILL)
                first.wait()
                killed = True
        accepted_before_rerun = len(emulator.users) + len(emulator.events)
        reruns = 0
        while True:  # rerun until the sync finishes (a request can exhaust its retries under this fault rate)
            reruns += 1
            try:
                run_measured(worker, env=env, cwd=PROJECT_ROOT, log=log)
                break
            except RuntimeError:
                if reruns >= 5:
                    raise
        warehouse = DuckDBWarehouse(database)
        ((backlog,),) = warehouse.query("select count(*) from ops.sync_rejections where not resolved")
        ((retries,),) = warehouse.query("select coalesce(sum(retries), 0) from ops.sync_runs")
        emails = {f"user{i:07d}@example.com" for i in range(users)}
        event_ids = {iterable_event_id(f"trial_signups:evt-{i:07d}") for i in range(users)}
        lost = len(emails - set(emulator.users)) + len(event_ids - set(emulator.events)) - int(backlog)
        return {
            "chaos_users": users,
            "chaos_events": users,
            "chaos_fault_rates": faults,
            "chaos_killed_after_seconds": round(kill_after, 1) if killed else None,
            "chaos_accepted_before_kill": accepted_before_rerun,
            "chaos_reruns": reruns,
            "chaos_records_lost": lost,
            "chaos_events_duplicated": len(emulator.events) - len(event_ids & set(emulator.events)),
            "chaos_event_redeliveries": sum(n - 1 for n in emulator.event_receipts.values() if n > 1),
            "chaos_retries_recorded": int(retries),  # by runs that finished; a killed run records none
            "chaos_faults_injected": dict(emulator.fault_counts),
            "chaos_rejection_backlog": int(backlog),
        }


# -- report -------------------------------------------------------------------------------------------------------


def verdicts(results: dict[str, Any], goals: dict[str, tuple[str, float]] = GOALS) -> dict[str, dict[str, Any]]:
    """Each measured figure with its goal and whether it is met (a figure not measured has no verdict)."""
    checks: dict[str, Callable[[float, float], bool]] = {
        "<=": lambda v, g: v <= g,
        ">=": lambda v, g: v >= g,
        "<": lambda v, g: v < g,
    }
    out = {}
    for name, (op, goal) in goals.items():
        if results.get(name) is not None:
            out[name] = {"value": results[name], "goal": f"{op} {goal}", "met": checks[op](results[name], goal)}
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Bench of {results['generated_at']} on {results['machine']}: "
        + (f"{results['users']:,} contacts." if "users" in results else f"chaos, {results['chaos_users']:,} users."),
        "",
        "| figure | value | goal | met |",
        "| --- | --- | --- | --- |",
    ]
    for name, verdict in results["verdicts"].items():
        lines.append(f"| {name} | {verdict['value']} | {verdict['goal']} | {'yes' if verdict['met'] else 'NO'} |")
    scales = {int(n): row for n, row in results.get("scales", {}).items()}
    if "users" in results and "pipeline_seconds" in results:
        scales[results["users"]] = scale_row(results["users"], results)
    if len(scales) > 1:
        lines += ["", "| contacts | daily run (s) | s per 1,000 contacts | peak memory (MB) | dbt steps (s) | peak |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for users, row in sorted(scales.items()):
            lines.append(
                f"| {users:,} | {row['pipeline_seconds']} | {row['seconds_per_1000_contacts']} | "
                f"{row['pipeline_peak_rss_mb']} | {row['dagster_dbt_steps_seconds']} | "
                f"{row.get('pipeline_peak_rss_where') or '-'} |"
            )
    return "\n".join(lines) + "\n"


def machine() -> str:
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()} {os.cpu_count()} cores {memory_gb:.0f} GiB, Python {platform.python_version()}"


@contextlib.contextmanager
def emulator_process(log: Path) -> Iterator[str]:
    """The loopback Iterable emulator (Iterable's own limits) in its own process; yields its base URL.

    Its own process, like the real API: the bench's memory and threads cannot delay when it stamps a request's
    arrival for its 5-per-second window, and the daily run's pace is measured against that alone."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.iterable_emulator", "--port", "0", "--api-key", API_KEY],
            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=out,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        match = re.search(r"listening on (http://\S+)", line)
        if match is None:
            raise RuntimeError(f"the Iterable emulator did not start: {line!r}; see {log}")
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=30)


def pipeline_env(base_env: dict[str, str], database: Path, base_url: str) -> dict[str, str]:
    """The settings of a pipeline run on `database`, pushing to the loopback Iterable emulator at `base_url`."""
    return {
        **base_env,
        "DUCKDB_PATH": str(database),
        "ITERABLE_API_KEY": API_KEY,
        "ITERABLE_BASE_URL": base_url,
        "ITERABLE_MARKETING_MESSAGE_TYPE_ID": MESSAGE_TYPE_ID,
    }


def dagster_home(folder: Path) -> Path:
    """A fresh Dagster instance folder with the project's instance settings."""
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT_ROOT / "instance" / "dagster.yaml", home / "dagster.yaml")
    return home


def scale_runs(work: Path, scales: Sequence[int], base_env: dict[str, str], log: Path) -> dict[str, Any]:
    """The daily pipeline at each of `scales` contacts (generated, then run through Dagster against a fresh
    emulator): wall time, peak memory and seconds per 1,000 contacts, so the cost's growth with size shows."""
    rows: dict[str, dict[str, Any]] = {}
    for users in scales:
        print(f"bench: scale {users:,} ...", file=sys.stderr, flush=True)
        folder = work / f"scale-{users}"
        env = {**base_env, "DAGSTER_HOME": str(dagster_home(folder)), "LANDING_DIR": str(folder / "landing")}
        generated = generate(folder, users, env, log)
        with emulator_process(log) as base_url:
            database = folder / "pipeline.duckdb"
            (folder / "generated.duckdb").rename(database)
            figures = dagster_pipeline(folder, pipeline_env(env, database, base_url), log)
        rows[str(users)] = scale_row(users, figures) | generated
        shutil.rmtree(folder, ignore_errors=True)
    return {"scales": rows}


def scale_row(users: int, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "pipeline_seconds": figures["pipeline_seconds"],
        "pipeline_peak_rss_mb": figures["pipeline_peak_rss_mb"],
        "pipeline_peak_rss_where": figures.get("pipeline_peak_rss_where"),
        "seconds_per_1000_contacts": round(figures["pipeline_seconds"] / users * 1000, 3),
        "dagster_dbt_steps_seconds": figures["dagster_dbt_steps_seconds"],
        "push_fraction_of_ceiling": figures["push_fraction_of_ceiling"],
    }


def scale_figures(results: dict[str, Any]) -> dict[str, Any]:
    """The largest run's peak memory, and its time per contact over the main run's (when it is larger)."""
    rows = {int(users): row for users, row in results.get("scales", {}).items()}
    rows[results["users"]] = scale_row(results["users"], results)
    largest = max(rows)
    figures: dict[str, Any] = {
        "scale_largest_users": largest,
        "scale_largest_peak_rss_mb": rows[largest]["pipeline_peak_rss_mb"],
    }
    if largest > results["users"]:
        main_per_contact = rows[results["users"]]["seconds_per_1000_contacts"]
        figures["scale_largest_seconds_per_contact_over_main"] = round(
            rows[largest]["seconds_per_1000_contacts"] / main_per_contact, 3
        )
    return figures


def signup_latency(samples: int, seed: int) -> dict[str, Any]:
    """Landing to accepted by Iterable for `samples` signup files under `dagster dev` (its daemon and sensor)."""
    from devtools.measure_signup_latency import measure

    measured = measure(samples, users=500, seed=seed, timeout=300)
    latency = measured["latency_seconds"]
    return {
        "signup_latency_samples": [sample["events_seconds"] for sample in measured["samples"]],
        "signup_latency_min_seconds": latency["min"],
        "signup_latency_median_seconds": latency["median"],
        "signup_latency_max_seconds": latency["max"],
        "signup_max_deliveries_per_event": measured["max_deliveries_per_event"],
    }


def bench(
    users: int,
    out: Path,
    work: Path,
    *,
    with_chaos: bool,
    chaos_users: int,
    seed: int,
    scales: Sequence[int] = (),
    signup_samples: int = 0,
    repeats: int = 5,
) -> dict[str, Any]:
    log = work / "bench.log"
    home = dagster_home(work)
    results: dict[str, Any] = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "users": users,
        "command": " ".join(["python -m devtools.bench", *sys.argv[1:]]),
    }
    base_env = {
        key: value for key, value in os.environ.items() if not key.startswith(("ITERABLE_", "GAINSIGHT_", "DAGSTER_"))
    }
    base_env.update({"MARKETING_WAREHOUSE": "duckdb", "DAGSTER_HOME": str(home), "LANDING_DIR": str(work / "landing")})
    stages: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    with emulator_process(log) as base_url:
        env = pipeline_env(base_env, work / "pipeline.duckdb", base_url)
        stages = [
            ("sample data", lambda: generate(work, users, base_env, log)),
            ("plain dbt build", lambda: plain_dbt_build(work, base_env, log)),
            ("pipeline through Dagster", lambda: _copy_then(work, env, log)),
            ("change-only reruns", lambda: change_only_reruns(env, log)),
        ]
        for name, stage in stages:
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            results.update(stage())
    # Dagster's dbt steps over the same plain builds, one per step; and over one plain build (the cost of the split too)
    results["orchestration_overhead_ratio"] = round(
        results["dagster_dbt_steps_seconds"] / results["plain_dbt_step_builds_seconds"], 3
    )
    results["dagster_dbt_over_single_build_ratio"] = round(
        results["dagster_dbt_steps_seconds"] / results["plain_dbt_build_seconds"], 3
    )
    print("bench: sync changelog ...", file=sys.stderr, flush=True)
    results.update(changelog_cost(work, users))
    print("bench: sensor tick ...", file=sys.stderr, flush=True)
    results.update(sensor_tick(work))
    print("bench: definitions load ...", file=sys.stderr, flush=True)
    results.update(definitions_load(base_env, repeats))
    if signup_samples:
        print(f"bench: signup latency, {signup_samples} files under dagster dev ...", file=sys.stderr, flush=True)
        results.update(signup_latency(signup_samples, seed))
    results.update(scale_runs(work, [n for n in scales if n != users], base_env, log))
    results.update(scale_figures(results))
    if with_chaos:
        print("bench: chaos ...", file=sys.stderr, flush=True)
        results.update(chaos(work, chaos_users, seed, log))
    results["verdicts"] = verdicts(results, goals(users))
    write_results(results, out)
    return results


def _copy_then(work: Path, env: dict[str, str], log: Path) -> dict[str, Any]:
    shutil.copyfile(work / "generated.duckdb", env["DUCKDB_PATH"])
    return dagster_pipeline(work, env, log)


def write_results(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(results))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=None, help=f"contacts to generate (default {DEFAULT_USERS:,})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_USERS:,} contacts, no chaos: a CI smoke run")
    parser.add_argument("--chaos", action="store_true", help="only the chaos run (make chaos)")
    parser.add_argument("--with-chaos", action="store_true", help="the bench, then the chaos run")
    parser.add_argument("--chaos-users", type=int, default=100_000)
    parser.add_argument(
        "--scales",
        default=None,
        help="comma-separated contact counts the daily pipeline also runs at "
        f"(default {','.join(map(str, DEFAULT_SCALES))}; none with --quick; '' for none)",
    )
    parser.add_argument(
        "--signup-samples", type=int, default=SIGNUP_SAMPLES, help="signup files timed under dagster dev (0: none)"
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--repeats", type=int, default=5, help="new processes per definitions-load median (default 5)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "bench" / "results.json")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--chaos-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.chaos_worker:
        chaos_worker(args.chaos_worker, os.environ["CHAOS_BASE_URL"])
        return 0
    users = args.users or (QUICK_USERS if args.quick else DEFAULT_USERS)
    with tempfile.TemporaryDirectory(prefix="bench-", dir=args.workdir, ignore_cleanup_errors=True) as tmp:
        work = Path(tmp)
        if args.chaos:
            results = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine()}
            results.update(chaos(work, args.chaos_users, args.seed, work / "chaos.log"))
            results["verdicts"] = verdicts(results)
            out = args.out.with_name("chaos.json") if args.out.name == "results.json" else args.out
            write_results(results, out)
        else:
            scales = (
                args.scales if args.scales is not None else ("" if args.quick else ",".join(map(str, DEFAULT_SCALES)))
            )
            results = bench(
                users,
                args.out,
                work,
                with_chaos=args.with_chaos,
                chaos_users=args.chaos_users,
                seed=args.seed,
                scales=[int(n) for n in scales.split(",") if n.strip()],
                signup_samples=args.signup_samples,
                repeats=args.repeats,
            )
            out = args.out
    print(out.with_suffix(".md").read_text())
    return 0 if all(v["met"] for v in results["verdicts"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
