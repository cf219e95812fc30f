"""What every destination sync asset shares: run the sync engine (live or dry-run), close the client, report, and
the WARN check that names the records a destination rejected."""

from typing import Any, Protocol

import dagster as dg
from pydantic import Field

from marketing_pipelines.clients._http import JsonApiClient
from marketing_pipelines.defs.change_guard import record_override
from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.rule_checks import violations_result
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.sync import Api, Audience, Destination, Outbox, SyncReport, Transport, run_sync
from marketing_pipelines.sync.limits import CommunicationLimits
from marketing_pipelines.sync.ops_tables import OPS_SCHEMA, SYNC_REJECTIONS


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


def rejection_backlog_check(
    *,
    name: str,
    asset: str,
    destination: str,
    audience: Audience,
    what: str,
    record_columns: tuple[str, str],
    labels: tuple[str, str, str],
) -> dg.AssetChecksDefinition:
    """A WARN check on a sync asset that fails while `destination` has unresolved rows in `ops.sync_rejections`,
    naming each record and the destination's reason (refused alone, failed update, or invalid record).

    `record_columns` are two SQL expressions naming the record, over `rejections` (ops.sync_rejections) and
    `audience` (the audience row of the record key, when it is still there); `labels` name them and the reason in
    the result's samples. An e-mail is shown masked when its label is `email`.
    """
    schema, table = audience.table.split(".", 1)
    first, second = record_columns

    @dg.asset_check(
        asset=asset,
        name=name,
        pool=WAREHOUSE_POOL,
        description=(
            f"Warns while {what} records are rejected and not yet accepted, naming them with the reason (see "
            f"`ops.sync_rejections`, destination `{destination}`). They are retried on every run and resolved once "
            "accepted; a request refused whole (HTTP 400/413/422) is split until the bad records stand alone."
        ),
    )
    def _check(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        db = warehouse.get_warehouse()
        if not db.table_exists(OPS_SCHEMA, "sync_rejections"):
            return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN, description="No sync yet.")
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
        return violations_result(
            db,
            violations,
            severity=dg.AssetCheckSeverity.WARN,
            what=f"records rejected by {what} are waiting to be retried",
            labels=names,
        )

    return _check
