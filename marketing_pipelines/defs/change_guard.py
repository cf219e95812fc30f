"""The runaway-change guard: a blocking check on an audience that holds its push when too many of the records a
destination accepted would be removed or changed, unless the run allows a large change.

An audience that suddenly loses most of its rows (a broken join, an empty source, a wrong filter) would otherwise
be pushed as is. The guard compares the audience with `ops.sync_state` (what the destination accepted):
- to remove: a record synced before and no longer in the audience;
- to change: a record in both whose payload hash differs;
- to add: a record in the audience never synced (never held: adding is what a sync does).
Each share is measured against the records synced so far. The first sync (nothing synced yet) is never held.

Override: a run launched with the tag `allow_large_change=true`, or with `allow_large_change: true` in the guard's
run config, lets the push through; the check then fails with WARN (non-blocking) saying it was allowed, the run gets
the tag, and `ops.sync_runs.allow_large_change` records the choice for each guarded push of that run.

Event streams (signup profiles, trial events, unsubscribes) are not guarded: each record is an event sent once and
never removed or changed by a later run, so there is nothing to runaway-remove or runaway-change.
"""

from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field

from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.sync import Audience, Destination
from marketing_pipelines.sync.gainsight import COMPANIES, PEOPLE
from marketing_pipelines.sync.iterable import USERS
from marketing_pipelines.sync.ops_tables import OPS_SCHEMA, SYNC_RUNS, SYNC_STATE
from marketing_pipelines.warehouse import Warehouse

#: The run tag (and run config field) that lets a push held by the guard through.
ALLOW_LARGE_CHANGE = "allow_large_change"
DEFAULT_MAX_REMOVED_SHARE = 0.10
DEFAULT_MAX_CHANGED_SHARE = 0.50
#: Destinations the guard protects: the others are event streams (see the module docstring).
GUARDED_DESTINATIONS = frozenset({USERS.name, COMPANIES.name, PEOPLE.name})


class ChangeGuardConfig(dg.Config):
    """Run config of one guard (launchpad: `ops: <check op>: config:`); shares are fractions, 0.10 = 10%."""

    max_removed_share: float = Field(
        default=DEFAULT_MAX_REMOVED_SHARE,
        ge=0,
        le=1,
        strict=True,  # a boolean is not a share (note: Dagster run config itself reads YAML `true` as 1.0)
        description="Hold the push when more than this share of the synced records would be removed (0 to 1).",
    )
    max_changed_share: float = Field(
        default=DEFAULT_MAX_CHANGED_SHARE,
        ge=0,
        le=1,
        strict=True,
        description="Hold the push when more than this share of the synced records would change (0 to 1).",
    )
    allow_large_change: bool = Field(
        default=False,
        description="Let the push through even when a share is over its limit (recorded in the run's tags).",
    )


@dataclass(frozen=True)
class ChangeCounts:
    """The audience against what the destination accepted."""

    synced: int
    would_add: int
    would_change: int
    would_remove: int

    def share(self, count: int) -> float:
        return count / self.synced if self.synced else 0.0


def change_counts_sql(audience: Audience, destination: str) -> str:
    """One row: records synced for `destination`, and how many of the audience's would be added, changed, removed
    (keys and hashes as the sync engine computes them)."""
    return f"""
        with audience as (
            select cast({audience.key_column} as varchar) as record_key, {audience.hash_sql()} as payload_hash
            from {audience.table}
            where {audience.key_column} is not null
        ),
        synced as (
            select record_key, payload_hash from {SYNC_STATE} where destination = '{destination}'
        )
        select
            count(synced.record_key) as synced,
            count(case when synced.record_key is null then 1 end) as would_add,
            count(case when audience.record_key is not null and synced.record_key is not null
                and audience.payload_hash <> synced.payload_hash then 1 end) as would_change,
            count(case when audience.record_key is null then 1 end) as would_remove
        from audience
        full outer join synced on audience.record_key = synced.record_key
    """


def change_counts(warehouse: Warehouse, audience: Audience, destination: str) -> ChangeCounts:
    """What a push of `audience` to `destination` would do now; nothing synced when no sync has run yet."""
    if not warehouse.table_exists(OPS_SCHEMA, "sync_state"):
        ((rows,),) = warehouse.query(f"select count(*) from {audience.table}")
        return ChangeCounts(synced=0, would_add=int(rows), would_change=0, would_remove=0)
    ((synced, add, change, remove),) = warehouse.query(change_counts_sql(audience, destination))
    return ChangeCounts(int(synced), int(add), int(change), int(remove))


def large_change_allowed(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Whether the run carries the tag `allow_large_change=true` (read from the instance: a guard may add it
    after the run started)."""
    run = instance.get_run_by_id(run_id)
    return run is not None and run.tags.get(ALLOW_LARGE_CHANGE, "").strip().lower() == "true"


def ensure_override_column(warehouse: Warehouse) -> None:
    """Add `allow_large_change` to `ops.sync_runs` when missing (idempotent; the engine creates the table)."""
    warehouse.execute(f"alter table {SYNC_RUNS} add column if not exists {ALLOW_LARGE_CHANGE} boolean")


def record_override(warehouse: Warehouse, instance: dg.DagsterInstance, run_id: str, destination: str) -> None:
    """Record in `ops.sync_runs` whether the run allowed a large change, on the row of a guarded push (others stay
    NULL: no guard applies to them)."""
    if destination not in GUARDED_DESTINATIONS:
        return
    ensure_override_column(warehouse)
    allowed = "true" if large_change_allowed(instance, run_id) else "false"
    warehouse.execute(
        f"update {SYNC_RUNS} set {ALLOW_LARGE_CHANGE} = {allowed} "
        f"where run_id = '{run_id}' and destination = '{destination}'"
    )


def _percent(share: float) -> str:
    return f"{share * 100:g}%"


def change_guard_check(
    *, name: str, asset: dg.AssetKey, destination: Destination[Any], what: str
) -> dg.AssetChecksDefinition:
    """The blocking guard on `asset` (the audience the push to `destination` depends on): holds the push when the
    share of synced records it would remove or change is over the run's limits (see the module docstring)."""
    if destination.name not in GUARDED_DESTINATIONS:
        raise ValueError(f"{destination.name} is not guarded: its pushes would not record the override")
    audience = destination.audience

    @dg.asset_check(
        asset=asset,
        name=name,
        blocking=True,
        pool=WAREHOUSE_POOL,
        description=(
            f"Runaway-change guard for {what}: holds the push (ERROR, blocking) when more than "
            f"{_percent(DEFAULT_MAX_REMOVED_SHARE)} of the records synced to `{destination.name}` (in "
            f"`ops.sync_state`) would be removed, or more than {_percent(DEFAULT_MAX_CHANGED_SHARE)} changed (limits "
            "in the check's run config). "
            "Never holds the first sync. A run tagged `allow_large_change=true` (or with `allow_large_change: true` "
            "in this check's config) lets it through: the check then warns that it was allowed, and "
            "`ops.sync_runs.allow_large_change` records it."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext, config: ChangeGuardConfig, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        counts = change_counts(warehouse.get_warehouse(), audience, destination.name)
        removed, changed = counts.share(counts.would_remove), counts.share(counts.would_change)
        run_id = context.run.run_id
        allowed = config.allow_large_change or large_change_allowed(context.instance, run_id)
        if config.allow_large_change and not large_change_allowed(context.instance, run_id):
            context.instance.add_run_tags(run_id, {ALLOW_LARGE_CHANGE: "true"})
        metadata = {
            "synced": dg.MetadataValue.int(counts.synced),
            "would_add": dg.MetadataValue.int(counts.would_add),
            "would_change": dg.MetadataValue.int(counts.would_change),
            "would_remove": dg.MetadataValue.int(counts.would_remove),
            "shares": dg.MetadataValue.json({"removed": round(removed, 4), "changed": round(changed, 4)}),
            "thresholds": dg.MetadataValue.json(
                {"max_removed_share": config.max_removed_share, "max_changed_share": config.max_changed_share}
            ),
            ALLOW_LARGE_CHANGE: dg.MetadataValue.bool(allowed),
        }
        summary = (
            f"{counts.would_remove} of {counts.synced} synced records would be removed ({removed:.1%}), "
            f"{counts.would_change} changed ({changed:.1%}), {counts.would_add} added"
        )
        if counts.synced == 0:
            return dg.AssetCheckResult(
                passed=True,
                metadata=metadata,
                description=f"First sync to {destination.name}: nothing synced yet, so nothing is held "
                f"({counts.would_add} records to add).",
            )
        over = [
            f"{kind} {share:.1%} > {_percent(limit)}"
            for kind, share, limit in (
                ("removals", removed, config.max_removed_share),
                ("changes", changed, config.max_changed_share),
            )
            if share > limit
        ]
        if not over:
            return dg.AssetCheckResult(passed=True, metadata=metadata, description=f"Within limits: {summary}.")
        if allowed:
            return dg.AssetCheckResult(
                passed=False,
                severity=dg.AssetCheckSeverity.WARN,
                metadata=metadata,
                description=f"Allowed by allow_large_change: {summary}; over the limit ({', '.join(over)}), "
                f"pushed to {destination.name} anyway.",
            )
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description=f"Push to {destination.name} held: {summary}; over the limit ({', '.join(over)}). If the "
            f"change is intended, run again with the tag `{ALLOW_LARGE_CHANGE}=true` (or "
            f"`{ALLOW_LARGE_CHANGE}: true` in this check's config).",
        )

    return _check
