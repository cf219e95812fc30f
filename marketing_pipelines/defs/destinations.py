"""What every destination sync asset shares: run the sync engine (live or dry-run), close the client, report, and
the health check that reports its rejections and names the records a destination rejected."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import dagster as dg
from pydantic import Field

from marketing_pipelines.clients._http import JsonApiClient
from marketing_pipelines.defs.change_guard import record_override
from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.rule_checks import violations_result
from marketing_pipelines.resources import SyncHealthResource, WarehouseResource
from marketing_pipelines.resources.sync_health import SyncHealthThresholds
from marketing_pipelines.sync import Api, Audience, Destination, Outbox, SyncReport, Transport, run_sync
from marketing_pipelines.sync.limits import CommunicationLimits
from marketing_pipelines.sync.ops_tables import OPS_SCHEMA, SYNC_REJECTIONS, SYNC_RUNS
from marketing_pipelines.warehouse import Warehouse


class SyncConfig(dg.Config):
    """Run config every sync asset takes (launchpad: *Config*; CLI: ``--config``)."""

    dry_run: bool = Field(
        default=False,
        description=(
            "Preview: write the request bodies to ops.outbox and mark nothing synced, even with credentials set; "
            "the metadata says how many records would be added, changed and removed."
        ),
    )


class ApiResource(Protocol):
    """A destination's resource: whether it runs in dry-run, and its client."""

    @property
    def is_dry_run(self) -> bool: ...

    def get_client(self) -> JsonApiClient | None: ...

    def communication_limits(self) -> CommunicationLimits: ...


def transport(resource: ApiResource, *, dry_run: bool = False) -> Transport:
    """Where the records go: the outbox in dry-run (asked for by the run, or the resource has no key or its
    `dry_run` set), else the API."""
    client = None if dry_run or resource.is_dry_run else resource.get_client()
    return Outbox() if client is None else Api(client)


def push(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    destination: Destination[Any],
    resource: ApiResource,
    *,
    dry_run: bool = False,
) -> SyncReport:
    """Run the sync engine for one destination, live or dry-run as the run (`dry_run`) and `resource` say, then
    close its client."""
    to = transport(resource, dry_run=dry_run)
    try:
        limits = resource.communication_limits()
        report = run_sync(warehouse.get_warehouse(), destination, to, run_id=context.run_id, limits=limits)
    finally:
        if isinstance(to, Api):
            to.client.close()
    record_override(warehouse.get_warehouse(), context.instance, context.run_id, destination.name)
    context.log.info(f"{destination.name} {report.mode}: {report.as_metadata()}")
    return report


def sync_result(report: SyncReport, **metadata: Any) -> dg.MaterializeResult:
    """The materialization of a sync asset: the run's counts (plotted in the UI) and any extra metadata."""
    return dg.MaterializeResult(metadata={**report.as_metadata(), "dagster/row_count": report.considered, **metadata})


def sync_health_check(
    *,
    asset: str,
    destination: str,
    audience: Audience,
    what: str,
    record_columns: tuple[str, str],
    labels: tuple[str, str, str],
) -> dg.AssetChecksDefinition:
    """The health check of a sync asset, named ``<asset>_health``: WARN while `destination` has unresolved rows in
    `ops.sync_rejections`, naming each record and the destination's reason (refused alone, failed update, or
    invalid record); ERROR when the latest run's rejection rate or the oldest unresolved rejection's age is above
    the `SyncHealthResource` thresholds. The rate, backlog and age are metadata, so the UI plots them.

    `record_columns` are two SQL expressions naming the record, over `rejections` (ops.sync_rejections) and
    `audience` (the audience row of the record key, when it is still there); `labels` name them and the reason in
    the result's samples. An e-mail is shown masked when its label is `email`.
    """
    schema, table = audience.table.split(".", 1)
    first, second = record_columns

    @dg.asset_check(
        asset=asset,
        name=f"{asset}_health",
        pool=WAREHOUSE_POOL,
        description=(
            f"Sync health of {what} (`ops.sync_runs`, `ops.sync_rejections`, destination `{destination}`): reports "
            "the latest run's rejection rate (rejected / records considered: the audience rows and the exits), the "
            "open backlog and the age in hours of the oldest unresolved rejection. Warns while records are rejected "
            "and not yet accepted, naming them with the reason; ERROR when the rate (over a run of at least "
            f"{MIN_RECORDS_FOR_RATE} records) is above SYNC_HEALTH_MAX_REJECTION_RATE or the oldest rejection is older "
            "than SYNC_HEALTH_MAX_REJECTION_AGE_HOURS. "
            "Never blocks: it runs after the push. Rejected records are retried on every run and resolved once "
            "accepted; a request refused whole (HTTP 400/413/422) is split until the bad records stand alone."
        ),
    )
    def _check(warehouse: WarehouseResource, sync_health: SyncHealthResource) -> dg.AssetCheckResult:
        limits = sync_health.thresholds()
        db = warehouse.get_warehouse()
        if not (db.table_exists(OPS_SCHEMA, "sync_rejections") and db.table_exists(OPS_SCHEMA, "sync_runs")):
            return dg.AssetCheckResult(
                passed=True, severity=dg.AssetCheckSeverity.WARN, description=f"No sync of {what} has run yet."
            )
        health = _health(db, destination)
        where = f"rejections.destination = '{destination}' and not rejections.resolved"
        if db.table_exists(schema, table):  # the audience row names the record
            violations = f"""
                select {first} as person_id, {second} as email, rejections.reason as value
                from {SYNC_REJECTIONS} as rejections
                left join {audience.table} as audience
                    on cast(audience.{audience.key_column} as varchar) = rejections.record_key
                where {where}
            """
            names = labels
        else:  # the audience is gone: the record key alone (masked, as it may be an e-mail)
            violations = f"""
                select cast(null as varchar) as person_id, rejections.record_key as email, rejections.reason as value
                from {SYNC_REJECTIONS} as rejections
                where {where}
            """
            names = (labels[0], "email", labels[2])
        too_high = health.judged and health.rate is not None and health.rate > limits.max_rejection_rate
        too_old = health.oldest_age_hours is not None and health.oldest_age_hours > limits.max_rejection_age_hours
        result = violations_result(
            db,
            violations,
            severity=dg.AssetCheckSeverity.ERROR if too_high or too_old else dg.AssetCheckSeverity.WARN,
            what=f"records rejected by {what} are waiting to be retried",
            labels=names,
        )
        if not health.ran and result.passed:
            description = f"No sync of {what} has run yet."
        else:
            description = f"{result.description} {health.describe(limits, too_high=too_high, too_old=too_old)}"
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=result.severity,
            description=description,
            metadata={**result.metadata, **health.metadata(limits)},
        )

    return _check


#: A run that considered fewer records than this is too small for its rejection rate to escalate to ERROR (3 bad
#: records of 30 are 10%, yet no sign that the destination is failing): the backlog and its age still do.
MIN_RECORDS_FOR_RATE = 100


@dataclass(frozen=True)
class _Health:
    """A destination's latest run and open backlog, as the health check reports them."""

    ran: bool
    """Whether `ops.sync_runs` records a run of the destination."""
    rejected: int
    considered: int
    backlog: int
    oldest_age_hours: float | None

    @property
    def rate(self) -> float | None:
        """Rejected / records the latest run considered; None before any run, 0.0 when it considered none.

        Considered, not sent: a later run sends only the changed records and the rejected ones again, so a rate over
        the records sent would read 100% on every run while one record waits."""
        if not self.ran:
            return None
        return self.rejected / self.considered if self.considered else 0.0

    @property
    def judged(self) -> bool:
        """Whether the latest run considered enough records for its rate to escalate (`MIN_RECORDS_FOR_RATE`)."""
        return self.considered >= MIN_RECORDS_FOR_RATE

    def describe(self, limits: SyncHealthThresholds, *, too_high: bool, too_old: bool) -> str:
        parts = []
        if self.rate is None:
            parts.append("No run is recorded in ops.sync_runs.")
        else:
            parts.append(
                f"The latest run rejected {self.rejected} of the {self.considered} records it considered "
                f"({self.rate:.1%}; ERROR above {limits.max_rejection_rate:.1%}"
                + ("" if self.judged else f" in a run of at least {MIN_RECORDS_FOR_RATE} records")
                + ")."
            )
        if self.oldest_age_hours is not None:
            parts.append(
                f"The oldest open rejection is {self.oldest_age_hours:.1f} hours old (ERROR above "
                f"{limits.max_rejection_age_hours} hours)."
            )
        if too_high or too_old:
            parts.append(
                "ERROR: "
                + " and ".join(
                    reason
                    for reason, above in (("the rejection rate", too_high), ("the oldest rejection's age", too_old))
                    if above
                )
                + " is above its threshold."
            )
        return " ".join(parts)

    def metadata(self, limits: SyncHealthThresholds) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "open_backlog": dg.MetadataValue.int(self.backlog),
            "oldest_rejection_age_hours": dg.MetadataValue.float(round(self.oldest_age_hours or 0.0, 2)),
            "max_rejection_rate": dg.MetadataValue.float(limits.max_rejection_rate),
            "max_rejection_age_hours": dg.MetadataValue.int(limits.max_rejection_age_hours),
        }
        if self.rate is not None:
            metadata["rejection_rate"] = dg.MetadataValue.float(round(self.rate, 4))
            metadata["latest_run_rejected"] = dg.MetadataValue.int(self.rejected)
            metadata["latest_run_considered"] = dg.MetadataValue.int(self.considered)
        return metadata


def _health(warehouse: Warehouse, destination: str) -> _Health:
    """The latest run of `destination` in `ops.sync_runs` (the records it considered: the audience rows and the
    exits it sent) and its open backlog in `ops.sync_rejections`."""
    latest = warehouse.query(
        f"""
        select rejected, considered + coalesce(removed, 0)
        from {SYNC_RUNS} where destination = '{destination}'
        order by finished_at desc limit 1
        """
    )
    ((backlog, oldest),) = warehouse.query(
        f"select count(*), min(first_attempt_at) from {SYNC_REJECTIONS} "
        f"where destination = '{destination}' and not resolved"
    )
    rejected, considered = (int(latest[0][0]), int(latest[0][1])) if latest else (0, 0)
    age = None
    if oldest is not None:
        now = datetime.now(UTC).replace(tzinfo=None)  # the engine writes naive UTC timestamps
        age = max((now - _naive(oldest)).total_seconds() / 3600, 0.0)
    return _Health(
        ran=bool(latest),
        rejected=rejected,
        considered=max(considered, rejected),
        backlog=int(backlog),
        oldest_age_hours=age,
    )


def _naive(value: Any) -> datetime:
    """A timestamp from the warehouse as a naive UTC datetime."""
    stamp = value.to_pydatetime() if hasattr(value, "to_pydatetime") else value
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp
