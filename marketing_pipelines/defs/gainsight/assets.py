"""Destination assets that push the Customer Programs audiences to Gainsight through the shared sync engine."""

import dagster as dg

from marketing_pipelines.clients.gainsight import GainsightClient
from marketing_pipelines.defs.constants import DAILY_FRESHNESS_POLICY, OWNER, WAREHOUSE_POOL
from marketing_pipelines.defs.destinations import SyncConfig, push, sync_result
from marketing_pipelines.resources import GainsightResource, WarehouseResource
from marketing_pipelines.sync import Destination
from marketing_pipelines.sync.gainsight import COMPANIES, PEOPLE, batched

RECIPIENTS_KEY = dg.AssetKey(["audiences", "gainsight_program_recipients"])
COMPANIES_KEY = dg.AssetKey(["audiences", "gainsight_program_companies"])


def push_to_gainsight(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    gainsight: GainsightResource,
    destination: Destination[GainsightClient],
    *,
    dry_run: bool = False,
) -> dg.MaterializeResult:
    """Sync one audience to one Gainsight object; metadata adds the audience's rows and skips per program and
    per segment."""
    report = push(context, warehouse, batched(destination, gainsight.records_per_call), gainsight, dry_run=dry_run)
    audience = destination.audience
    counts = {
        column: {
            str(value): {"rows": int(n), "skipped": int(skipped)}
            for value, n, skipped in warehouse.get_warehouse().query(
                f"select {column}, count(*), count(skip_reason) from {audience.table} group by {column} order by 1"
            )
        }
        for column in ("program", "segment")
    }
    return sync_result(
        report,
        by_program=dg.MetadataValue.json(counts["program"]),
        by_segment=dg.MetadataValue.json(counts["segment"]),
    )


@dg.asset(
    name="gainsight_company_sync",
    deps=[COMPANIES_KEY, RECIPIENTS_KEY],
    group_name="gainsight",
    freshness_policy=DAILY_FRESHNESS_POLICY,
    owners=[OWNER],
    kinds={"gainsight"},
    pool=WAREHOUSE_POOL,
    description=(
        "Customer Programs handbook: upserts every new or changed account of "
        "`audiences.gainsight_program_companies` (every customer account) as a Gainsight Company "
        "(`PUT /v1/data/objects/Company?keys=GitLab_Account_ID__gc`: matched on the account id, never the name, which "
        "two accounts may share; 50 records a call, ~100 calls a minute) with the program "
        "filter fields, its segment (`Customer_Segment__gc`: Tech Touch, Scale, CSM-Managed) and lifecycle program. "
        "CARR (`Arr`) is sent with exactly its digits; NULL when the source is not a usable amount. Accounts with an "
        "unknown deployment type are recorded in `ops.sync_rejections`. Runs after the blocking checks of both "
        "audiences; without GAINSIGHT_ACCESS_KEY it writes `ops.outbox` instead."
    ),
)
def gainsight_company_sync(
    context: dg.AssetExecutionContext, config: SyncConfig, warehouse: WarehouseResource, gainsight: GainsightResource
) -> dg.MaterializeResult:
    return push_to_gainsight(context, warehouse, gainsight, COMPANIES, dry_run=config.dry_run)


@dg.asset(
    name="gainsight_person_sync",
    deps=[RECIPIENTS_KEY, "gainsight_company_sync"],
    group_name="gainsight",
    freshness_policy=DAILY_FRESHNESS_POLICY,
    owners=[OWNER],
    kinds={"gainsight"},
    pool=WAREHOUSE_POOL,
    description=(
        "Customer Programs handbook: upserts every new or changed `audiences.gainsight_program_recipients` row as "
        "a Gainsight Person (`PUT /v1.0/api/people`, 50 records a call) associated with its company (looked up by "
        "account id): role, reason "
        "(gitlab_admin, sold_to_fallback, saas_owner, saas_maintainer), program and whether surveys may go to it. "
        "After the company sync (associations need the company). Rows with bad input are recorded in "
        "`ops.sync_rejections`; without GAINSIGHT_ACCESS_KEY it writes `ops.outbox` instead."
    ),
)
def gainsight_person_sync(
    context: dg.AssetExecutionContext, config: SyncConfig, warehouse: WarehouseResource, gainsight: GainsightResource
) -> dg.MaterializeResult:
    return push_to_gainsight(context, warehouse, gainsight, PEOPLE, dry_run=config.dry_run)
