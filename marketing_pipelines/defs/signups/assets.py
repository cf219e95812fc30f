"""Ingestion of landed trial signup / free registration files into `raw`, with bad lines quarantined."""

import dagster as dg
from pydantic import Field

from marketing_pipelines.defs.constants import OWNER, WAREHOUSE_KINDS, WAREHOUSE_POOL
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.signups.tables import EVENT_TABLES, create_tables_sql

TRIAL_SIGNUP_EVENTS_KEY = dg.AssetKey(["raw", EVENT_TABLES["trial_signups"]])
FREE_REGISTRATION_EVENTS_KEY = dg.AssetKey(["raw", EVENT_TABLES["free_registrations"]])
FILE_TAG = "signups/file"


class LandedFilesConfig(dg.Config):
    """The landed files this run loads (the sensor passes one; none loads nothing)."""

    files: list[str] = Field(default_factory=list, description="Absolute paths of landed JSONL files.")


def _ingest(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, config: LandedFilesConfig, kind: str
) -> dg.MaterializeResult:
    from marketing_pipelines.signups.ingest import IncompleteFile, ingest_file, kind_of

    files = [path for path in config.files if kind_of(path) == kind]
    db = warehouse.get_warehouse()
    totals = {"files": len(files), "lines_read": 0, "loaded": 0, "duplicates": 0, "quarantined": 0}
    reasons: dict[str, int] = {}
    preview: list[dict[str, object]] = []
    for path in files:
        try:
            report = ingest_file(db, path)
        except IncompleteFile as error:
            # a file still being written: wait for its last line rather than quarantine half of it
            raise dg.RetryRequested(max_retries=5, seconds_to_wait=10) from error
        context.log.info(f"ingested {path}: {report.as_metadata()}")
        for name in ("lines_read", "loaded", "duplicates", "quarantined"):
            totals[name] += getattr(report, name)
        for reason, count in report.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        preview.extend(report.preview)
    if not files:
        db.execute(create_tables_sql())
    table = f"raw.{EVENT_TABLES[kind]}"
    (row_count,) = db.query(f"select count(*) from {table}")[0]
    return dg.MaterializeResult(
        metadata={
            **totals,
            "source_files": dg.MetadataValue.json(files),
            "quarantine_reasons": dg.MetadataValue.json(reasons),
            "preview": dg.MetadataValue.json(preview[:10]),
            "dagster/row_count": int(row_count),
            "dagster/table_name": table,
        }
    )


_DESCRIPTION = (
    "Appends the {what} of the landed JSONL files named in run config (`files`, set by `trial_signup_sensor` "
    "from `LANDING_DIR/{kind}/`) to `raw.{table}`, once per `event_id` (an event landed twice, or twice in a file, "
    "is loaded once). Each line is validated (JSON object, required fields, types, dates, e-mail shape, "
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
