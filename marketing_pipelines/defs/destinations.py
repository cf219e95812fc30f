"""What every destination sync asset shares: run the sync engine (live or dry-run), close the client, report."""

from typing import Any

import dagster as dg

from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.sync import Audience, SyncReport, run_sync
from marketing_pipelines.sync.engine import ClientDestination


def push(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    audience: Audience,
    destination: ClientDestination[Any],
) -> SyncReport:
    """Run the sync engine for one destination (dry-run when it has no client), then close its client."""
    client = destination.client
    try:
        report = run_sync(
            warehouse.get_warehouse(),
            audience,
            destination,  # every ClientDestination subclass implements the Destination protocol
            dry_run=client is None,
            run_id=context.run_id,
        )
    finally:
        if client is not None:
            client.close()
    context.log.info(f"{destination.name} {report.mode}: {report.as_metadata()}")
    return report


def sync_result(report: SyncReport, **metadata: Any) -> dg.MaterializeResult:
    """The materialization of a sync asset: the run's counts (plotted in the UI) and any extra metadata."""
    return dg.MaterializeResult(metadata={**report.as_metadata(), "dagster/row_count": report.considered, **metadata})
