"""Ingestion of landed trial signup / free registration files into `raw`, with bad lines quarantined."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from marketing_pipelines.defs.constants import OWNER, WAREHOUSE_KINDS, WAREHOUSE_POOL
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.paths import DEFAULT_LANDING_DIR, resolve_project_path
from marketing_pipelines.signups.tables import EVENT_TABLES

TRIAL_SIGNUP_EVENTS_KEY = dg.AssetKey(["raw", EVENT_TABLES["trial_signups"]])
FREE_REGISTRATION_EVENTS_KEY = dg.AssetKey(["raw", EVENT_TABLES["free_registrations"]])
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


def _ingest(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: LandedFilesConfig, kind: str
) -> dg.MaterializeResult:
    from marketing_pipelines.signups.ingest import (
        IncompleteFile,
        ingest_file,
        ingested_versions,
        kind_of,
        pending_files,
    )

    db = warehouse.get_warehouse()
    catch_up = config.files is None
    if catch_up:
        files = list(pending_files(db, landing_dir(), kind))
    else:
        files = [path for path in config.files or [] if kind_of(path) == kind]
    totals = {"files": len(files), "lines_read": 0, "loaded": 0, "duplicates": 0, "quarantined": 0}
    reasons: dict[str, int] = {}
    preview: list[dict[str, object]] = []
    waiting: list[str] = []
    for path in files:
        try:
            report = ingest_file(db, path)
        except IncompleteFile as error:
            if catch_up:  # the sensor loads it once its last line is complete
                context.log.warning(str(error))
                waiting.append(path)
                continue
            # a file still being written: wait for its last line rather than quarantine half of it
            raise dg.RetryRequested(max_retries=5, seconds_to_wait=10) from error
        context.log.info(f"ingested {path}: {report.as_metadata()}")
        for name in ("lines_read", "loaded", "duplicates", "quarantined"):
            totals[name] += getattr(report, name)
        for reason, count in report.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        preview.extend(report.preview)
    if not files:
        ingested_versions(db)  # creates the tables, so the views over them build before the first file lands
    table = f"raw.{EVENT_TABLES[kind]}"
    (row_count,) = db.query(f"select count(*) from {table}")[0]
    return dg.MaterializeResult(
        metadata={
            **totals,
            "mode": "catch-up" if catch_up else "sensor",
            "source_files": dg.MetadataValue.json(files[:100]),
            "still_being_written": dg.MetadataValue.json(waiting),
            "quarantine_reasons": dg.MetadataValue.json(reasons),
            "preview": dg.MetadataValue.json(preview[:10]),
            "dagster/row_count": int(row_count),
            "dagster/table_name": table,
        }
    )


_DESCRIPTION = (
    "Appends the {what} of the landed JSONL files named in run config (`files`, set by `trial_signup_sensor` "
    "from `LANDING_DIR/{kind}/`; unset in the daily job: every file not in `ops.ingested_files` yet) to "
    "`raw.{table}`, once per `event_id` (an event landed twice, or twice in a file, is loaded once). "
    "Each line is validated (JSON object, required fields, types, dates, e-mail shape, "
    "employeeBucket); bad lines go to `ops.quarantine` with file, line number, raw text and reason. A file whose "
    "last line is still being written is retried, not quarantined."
)


@dg.asset(
    key=TRIAL_SIGNUP_EVENTS_KEY,
    group_name="signups",
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
