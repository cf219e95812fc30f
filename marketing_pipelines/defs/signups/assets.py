"""Ingestion of landed trial signup / free registration files into `raw`, with bad lines quarantined."""

import math
from pathlib import Path

import dagster as dg
from pydantic import Field

from marketing_pipelines.defs.constants import (
    DAILY_FRESHNESS_POLICY,
    FREE_REGISTRATION_EVENTS_KEY,
    OWNER,
    TRIAL_SIGNUP_EVENTS_KEY,
    WAREHOUSE_KINDS,
    WAREHOUSE_POOL,
)
from marketing_pipelines.paths import DEFAULT_LANDING_DIR, resolve_project_path
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.signups.tables import EVENT_TABLES

FILE_TAG = "signups/file"


class LandedFilesConfig(dg.Config):
    """The landed files this run loads: the sensor names one file; unset loads every file not loaded yet."""

    files: list[str] | None = Field(
        default=None,
        description=(
            "Absolute paths of landed JSONL files to load. Unset (the daily job, a UI launch): every file in "
            "LANDING_DIR whose content is not in `ops.ingested_files` yet. An empty list loads nothing."
        ),
    )


def landing_dir() -> Path:
    """LANDING_DIR (relative paths are relative to the repository root)."""
    return resolve_project_path(dg.EnvVar("LANDING_DIR").get_value(DEFAULT_LANDING_DIR) or DEFAULT_LANDING_DIR)


INCOMPLETE_LINE_ENV = "SIGNUPS_INCOMPLETE_LINE_SECONDS"
#: At most this many seconds between the sensor run's retries of a file whose last line is still being written.
RETRY_SECONDS = 30


def incomplete_line_seconds() -> float:
    """SIGNUPS_INCOMPLETE_LINE_SECONDS (default 120): how long a half-written last line is waited for."""
    from marketing_pipelines.signups.ingest import INCOMPLETE_LINE_SECONDS

    raw = (dg.EnvVar(INCOMPLETE_LINE_ENV).get_value() or "").strip()
    try:
        return max(0.0, float(raw)) if raw else float(INCOMPLETE_LINE_SECONDS)
    except ValueError:
        raise dg.Failure(f"{INCOMPLETE_LINE_ENV}={raw!r} is not a number of seconds") from None


def _ingest(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: LandedFilesConfig, kind: str
) -> dg.MaterializeResult:
    from marketing_pipelines.signups.ingest import (
        IncompleteFile,
        Ledger,
        ensure_tables,
        ingest_files,
        kind_of,
        pending_files,
    )
    from marketing_pipelines.signups.landing import shown

    db = warehouse.get_warehouse()
    ensure_tables(db)  # also lets the views over the raw tables build before the first file lands
    root = landing_dir()
    wait = incomplete_line_seconds()
    catch_up = config.files is None
    ledger = Ledger.load(db) if catch_up else None
    if catch_up:
        files = list(pending_files(db, root, kind, ledger))
    else:  # a path in neither folder is refused (and recorded) by the trial signup asset
        files = [p for p in config.files or [] if (kind_of(p) or "trial_signups") == kind]
    # the sensor's run retries a half-written file until it is older than `wait`, then quarantines the half line:
    # the last allowed attempt never waits, so the retries are never exhausted
    retry_seconds = max(1.0, min(float(RETRY_SECONDS), wait))
    max_retries = math.ceil(wait / retry_seconds) + 1
    give_up_waiting = context.retry_number >= max_retries
    totals = {"files": len(files), "lines_read": 0, "loaded": 0, "duplicates": 0, "quarantined": 0}
    outcomes: dict[str, list[str]] = {}
    reasons: dict[str, int] = {}
    preview: list[dict[str, object]] = []
    waiting: list[str] = []
    reports = ingest_files(
        db,
        files,
        ledger=ledger,
        waiting=waiting if catch_up else None,  # the sensor's run (or the next catch-up) loads it once complete
        landing_root=root,
        incomplete_line_seconds=wait,
        give_up_waiting=give_up_waiting,
    )
    try:
        for report in reports:
            context.log.debug(f"ingested {report.file}: {report.as_metadata()}")
            if report.outcome != "loaded" or report.reason:
                label = "already handled" if report.already_ingested else report.outcome
                outcomes.setdefault(label, []).append(f"{report.file}: {report.reason}")
            for name in ("lines_read", "loaded", "duplicates", "quarantined"):
                totals[name] += getattr(report, name)
            for reason, count in report.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + count
            preview.extend(report.preview[: max(0, 10 - len(preview))])
    except IncompleteFile as error:  # sensor mode: a half-written last line, within the wait
        context.log.warning(f"{error}: retrying in {retry_seconds:.0f} s")
        raise dg.RetryRequested(max_retries=max_retries, seconds_to_wait=retry_seconds) from error
    for path in waiting:
        context.log.warning(f"{path}: last line still being written; loaded by a later run")
    table = f"raw.{EVENT_TABLES[kind]}"
    (row_count,) = db.query(f"select count(*) from {table}")[0]
    return dg.MaterializeResult(
        metadata={
            **totals,
            "mode": "catch-up" if catch_up else "sensor",
            "source_files": dg.MetadataValue.json([shown(str(file)) for file in files[:100]]),
            "still_being_written": dg.MetadataValue.json(waiting),
            "files_not_loaded": dg.MetadataValue.json({k: v[:50] for k, v in outcomes.items()}),
            "quarantine_reasons": dg.MetadataValue.json(reasons),
            "preview": dg.MetadataValue.json(preview[:10]),
            "dagster/row_count": int(row_count),
            "dagster/table_name": table,
        }
    )


_DESCRIPTION = (
    "Appends the {what} of the landed JSONL files named in run config (`files`, set by `trial_signup_sensor` "
    "from `LANDING_DIR/{kind}/`; unset in the daily job: every file not in `ops.ingested_files` yet) to "
    "`raw.{table}`, once per `event_id` (an event landed twice, or twice in a file, is loaded once; the same "
    "content under a second name is recorded as a duplicate). Each line is validated (JSON object, required "
    "fields, types, time zone, dates, e-mail shape, id ranges, NUL / surrogate characters); bad lines go to "
    "`ops.quarantine` with file, line number, raw text and reason. Entries that are not regular files (symlinks, "
    "directories, FIFOs, devices), names not ending in `.jsonl`, names that are not UTF-8 (recorded with \\xNN "
    "escapes), gzip and UTF-16/UTF-32 files are refused and recorded. No file content or name fails the step. "
    "A last line still being written is waited for (SIGNUPS_INCOMPLETE_LINE_SECONDS), then quarantined."
)


@dg.asset(
    key=TRIAL_SIGNUP_EVENTS_KEY,
    group_name="signups",
    # the daily run catches up every file the sensor missed, so these materialize at least daily; a shorter
    # window would flag quiet hours (no file landed) although nothing is wrong
    freshness_policy=DAILY_FRESHNESS_POLICY,
    owners=[OWNER],
    kinds=WAREHOUSE_KINDS,
    pool=WAREHOUSE_POOL,
    description=_DESCRIPTION.format(what="trial signup events", kind="trial_signups", table="trial_signup_events"),
)
def trial_signup_events(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: LandedFilesConfig
) -> dg.MaterializeResult:
    return _ingest(context, warehouse, config, "trial_signups")


@dg.asset(
    key=FREE_REGISTRATION_EVENTS_KEY,
    group_name="signups",
    # the daily run catches up every file the sensor missed, so these materialize at least daily; a shorter
    # window would flag quiet hours (no file landed) although nothing is wrong
    freshness_policy=DAILY_FRESHNESS_POLICY,
    owners=[OWNER],
    kinds=WAREHOUSE_KINDS,
    pool=WAREHOUSE_POOL,
    description=_DESCRIPTION.format(
        what="free registration events", kind="free_registrations", table="free_registration_events"
    ),
)
def free_registration_events(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: LandedFilesConfig
) -> dg.MaterializeResult:
    return _ingest(context, warehouse, config, "free_registrations")
