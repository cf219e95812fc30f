"""Destination assets that push audiences to Iterable through the shared sync engine."""

import dagster as dg

from marketing_pipelines.defs.constants import OWNER, WAREHOUSE_POOL
from marketing_pipelines.defs.iterable.resources import IterableResource
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.sync import run_sync
from marketing_pipelines.sync.iterable import USER_AUDIENCE, IterableUserDestination

USER_AUDIENCE_KEY = dg.AssetKey(["audiences", "iterable_user_audience"])


@dg.asset(
    name="iterable_user_sync",
    deps=[USER_AUDIENCE_KEY],
    group_name="iterable",
    owners=[OWNER],
    kinds={"iterable"},
    pool=WAREHOUSE_POOL,
    description=(
        "Pushes new and changed `audiences.iterable_user_audience` rows to Iterable with `users/bulkUpdate` "
        "(1,000 users and < 4 MB a request, 5 requests/s), retrying rejected records on the next run. "
        "Runs after the audience's blocking checks; without ITERABLE_API_KEY it writes `ops.outbox` instead."
    ),
)
def iterable_user_sync(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    client = iterable.get_client()
    destination = IterableUserDestination(client, max_records=iterable.users_per_request)
    try:
        report = run_sync(
            warehouse.get_warehouse(),
            USER_AUDIENCE,
            destination,
            dry_run=client is None,
            run_id=context.run_id,
        )
    finally:
        if client is not None:
            client.close()
    context.log.info(f"iterable_user_sync {report.mode}: {report.as_metadata()}")
    return dg.MaterializeResult(metadata={**report.as_metadata(), "dagster/row_count": report.considered})
