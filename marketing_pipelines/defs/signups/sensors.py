"""`trial_signup_sensor`: one run per new file landed in `LANDING_DIR/trial_signups/` or `free_registrations/`."""

from __future__ import annotations

import json
import time

import dagster as dg

from marketing_pipelines.defs.signups.assets import FILE_TAG, landing_dir
from marketing_pipelines.defs.signups.jobs import ingest_signups_job
from marketing_pipelines.defs.transform.schedules import REFRESH_JOB_NAME
from marketing_pipelines.paths import DEFAULT_DUCKDB_PATH, resolve_project_path
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.signups.landing import (
    EVENT_KINDS,
    LandedFile,
    file_run_key,
    new_files,
    parse_cursor,
    refused_version,
    shown,
)
from marketing_pipelines.signups.tables import EVENT_TABLES

ASSET_OF_KIND = {kind: f"raw__{table}" for kind, table in EVENT_TABLES.items()}
#: Tag of a signup run requested while the daily run is in progress: its steps wait for the `warehouse` pool
#: (DuckDB has one writer) until the daily step holding it ends; the value names that run.
WAITS_FOR_TAG = "signups/waits_for_warehouse"


def ingested_paths(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, files: list[LandedFile]
) -> set[str]:
    """The paths among ``files`` whose current version `ops.ingested_files` records as handled (the daily job's
    catch-up loads landed files too). Read only on a tick that found new files; a DuckDB file is opened read-only
    without waiting: while a run holds it (or the ledger cannot be read), the cursor alone decides, as it did."""
    from marketing_pipelines.signups.ingest import Ledger, landed_version
    from marketing_pipelines.warehouse import DuckDBWarehouse
    from marketing_pipelines.warehouse.duckdb import WarehouseLockTimeout

    try:
        if warehouse.kind.lower() == "duckdb":
            db = DuckDBWarehouse(
                resolve_project_path(warehouse.duckdb_path or DEFAULT_DUCKDB_PATH), lock_wait_seconds=0, read_only=True
            )
            if not db.path.exists():
                return set()
            ledger = Ledger.load(db)
        else:
            ledger = Ledger.load(warehouse.get_warehouse())
    except WarehouseLockTimeout:
        context.log.info(
            "ops.ingested_files not read (a run holds the DuckDB file); new files are requested by the cursor alone"
        )
        return set()
    except Exception as error:  # not created yet, unreachable: never fail the tick
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        context.log.info(f"ops.ingested_files not read ({reason}); new files are requested by the cursor alone")
        return set()
    recorded = {path for path, _ in ledger.done}  # only these are hashed: a new name is never in the ledger
    handled = set()
    for landed in files:
        if landed.path not in recorded:
            continue
        try:
            if (landed.path, landed_version(landed)) in ledger.done:
                handled.add(landed.path)
        except OSError:  # vanished or unreadable: its run records why
            continue
    return handled


def run_config_for(kind: str, path: str) -> dict:
    """Run config that makes the ingestion asset of ``kind`` load ``path`` (the other loads nothing)."""
    return {"ops": {asset: {"config": {"files": [path] if k == kind else []}} for k, asset in ASSET_OF_KIND.items()}}


#: Seconds between the sensor's ticks: a landed signup waits at most this long before its run is requested (then the
#: run starts in ~15 s and takes a few). A tick over files it has seen lists two folders and reads nothing else.
SENSOR_INTERVAL_SECONDS = 10


@dg.sensor(
    name="trial_signup_sensor",
    job=ingest_signups_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches `LANDING_DIR/trial_signups/` and `LANDING_DIR/free_registrations/` for new files and requests one "
        "`ingest_signups_job` run per file (run key: folder, name, device, inode, size, modification and change "
        "times and a hash of at most the first and last MiB, so a file version is never run twice and a file of "
        "any size is keyed at once; ingestion dedupes by the SHA-256 of the whole content). Entries that are not "
        "regular `*.jsonl` files (symlinks, directories, FIFOs, other suffixes, names that are not UTF-8, shown "
        "with \\xNN escapes) get a run too, keyed by their change time, which records them as refused without "
        "opening them. Names starting with `.` (being landed) are skipped. "
        "The cursor holds a change-time watermark and the names seen in the last two "
        "minutes only; a file landed with an old modification time is still picked up. A file whose version "
        "`ops.ingested_files` already records (the daily job loaded it) gets no run; while a run holds the DuckDB "
        "file, the cursor alone decides. A run requested while `refresh_marketing_data_job` is in progress is "
        "tagged `signups/waits_for_warehouse` with that run: DuckDB has one writer, so its steps wait in the "
        "`warehouse` pool while a daily step holds it (the run page shows the wait)."
    ),
)
def trial_signup_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource
) -> dg.SensorResult | dg.SkipReason:
    landing = landing_dir()
    cursor = parse_cursor(context.cursor)
    files, new_cursor = new_files(landing, cursor, time.time_ns())
    ingested = ingested_paths(context, warehouse, files) if files else set()
    daily = daily_run_in_progress(context.instance) if len(ingested) < len(files) else None
    waits = {WAITS_FOR_TAG: f"daily run {daily}"} if daily else {}
    requests = []
    for landed in files:
        if landed.path in ingested:
            continue
        try:  # a refused entry (a symlink, a FIFO, a name that is not UTF-8) is never opened
            if landed.refusal is not None:
                run_key = f"{landed.cursor_name}:{refused_version(landed.ctime_ns)}"
            else:
                run_key = file_run_key(landed.path)
        except OSError as error:  # removed, or unreadable in a way a later tick may not see: never fail the tick
            context.log.warning(f"skipped {landed.cursor_name}: {error.strerror or type(error).__name__}")
            continue
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                run_config=run_config_for(landed.kind, landed.path),
                tags={FILE_TAG: landed.cursor_name, "signups/kind": landed.kind, **waits},
            )
        )
    cursor_text = json.dumps(new_cursor, separators=(",", ":"))
    if not requests:
        loaded = f" ({len(ingested)} already in ops.ingested_files)" if ingested else ""
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"No new files in {shown(str(landing))}/{{{','.join(EVENT_KINDS)}}}{loaded}."),
            cursor=cursor_text,
        )
    return dg.SensorResult(run_requests=requests, cursor=cursor_text)


def daily_run_in_progress(instance: dg.DagsterInstance) -> str | None:
    """The id of a started `refresh_marketing_data_job` run, if any: a signup run requested now waits for the
    `warehouse` pool while one of its steps holds it (up to its longest step: see docs/operations.md)."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=REFRESH_JOB_NAME, statuses=[dg.DagsterRunStatus.STARTED]), limit=1
    )
    return runs[0].run_id if runs else None
