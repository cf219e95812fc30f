"""The raw tables upstream tools land, shown in the lineage as observable source assets.

Observing them (the first step of the daily run) records each table's row count and, where the dbt source declares
a `loaded_at_field`, its newest value as `dagster/last_updated_timestamp`: how recent the latest landing is.
"""

import time
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC
from typing import Any

import dagster as dg
from dagster_dbt.dbt_manifest import validate_manifest

from marketing_pipelines.defs.constants import OWNER, WAREHOUSE_POOL
from marketing_pipelines.defs.transform.translator import MarketingDbtTranslator
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.resources.dbt import dbt_project
from marketing_pipelines.warehouse import Warehouse

#: dbt sources whose raw tables a Dagster asset of this project loads (so they are not external sources).
LOADED_BY_DAGSTER = frozenset({"signups"})
#: The observation's metadata key for the newest `loaded_at_field` value (Dagster's freshness checks read it).
LAST_UPDATED = "dagster/last_updated_timestamp"
#: The metadata key (on the spec) naming the column whose newest value says how recent the latest landing is.
LOADED_AT_FIELD = "loaded_at_field"
#: The metadata key (on the spec) of the dbt source's `freshness.warn_after`, in hours: how old the newest landed row
#: may be. Only tables that land every day declare one (an unsubscribe or account export may rightly be quiet).
ARRIVAL_WINDOW_HOURS = "arrival_window_hours"
#: The name of the check on each raw table that says when its data last arrived.
RAW_FRESHNESS_CHECK = "source_still_arriving"


def raw_source_specs(warehouse_kind: str = "duckdb") -> list[dg.AssetSpec]:
    """One spec per dbt source table, keyed like the dbt assets' upstream dependencies (reads the manifest: called
    when definitions load, never at import), of the kind of the warehouse that holds them."""
    project = dbt_project()
    manifest = validate_manifest(project.manifest_path)  # dagster-dbt's cached read: the dbt assets parse it once
    translator = MarketingDbtTranslator()
    specs = []
    for unique_id, props in sorted(manifest["sources"].items()):
        if props["source_name"] in LOADED_BY_DAGSTER:
            continue
        key = translator.get_asset_spec(manifest, unique_id, project).key
        loaded_at = props.get("loaded_at_field") or (props.get("config") or {}).get("loaded_at_field")
        window = warn_after_hours(props.get("freshness") or {})
        specs.append(
            dg.AssetSpec(
                key=key,
                description=props.get("description") or f"Raw table {props['name']}.",
                group_name="raw",
                owners=[OWNER],
                kinds={warehouse_kind},
                metadata={
                    "dagster/table_name": f"raw.{props['name']}",
                    "source_system": props["source_name"],
                    **({LOADED_AT_FIELD: loaded_at} if loaded_at else {}),
                    **({ARRIVAL_WINDOW_HOURS: window} if loaded_at and window else {}),
                },
            )
        )
    return specs


def raw_sources(warehouse_kind: str = "duckdb") -> dg.AssetsDefinition:
    """The raw tables as one observable source asset: one step observes them all (reads the manifest)."""
    specs = raw_source_specs(warehouse_kind)

    def observe_raw_sources(warehouse: WarehouseResource) -> Iterator[dg.ObserveResult]:
        """Counts the rows of every raw table and finds the newest value of its `loaded_at_field`."""
        db = warehouse.get_warehouse()
        for spec in specs:
            yield observe_table(db, spec.key, spec.metadata)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)  # the decorator is marked beta in 1.13
        observe_raw_sources = dg.multi_observable_source_asset(specs=specs, name="observe_raw_sources")(
            observe_raw_sources
        )

    return _in_pool(observe_raw_sources, WAREHOUSE_POOL)


def warn_after_hours(freshness: Mapping[str, Any]) -> float | None:
    """A dbt source's `freshness.warn_after` in hours (None when it declares none)."""
    warn_after = freshness.get("warn_after") or {}
    count, period = warn_after.get("count"), warn_after.get("period")
    if not count or not period:
        return None
    return float(count) * {"minute": 1 / 60, "hour": 1, "day": 24}[period]


def raw_freshness_check(sources: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    """A WARN check on every raw table whose dbt source declares a `loaded_at_field` and a `freshness.warn_after`:
    it fails when the newest value that the table's latest observation recorded is older than that (or the table
    was never observed with one), so a source that stopped arriving shows before the marts built on it go stale. It
    reads the instance's observations, not the warehouse."""
    windows = {
        spec.key: float(getattr(window, "value", window))
        for spec in sources.specs
        if (window := spec.metadata.get(ARRIVAL_WINDOW_HOURS)) is not None
    }
    specs = [
        dg.AssetCheckSpec(
            RAW_FRESHNESS_CHECK,
            asset=key,
            description=(
                f"Warns when the newest `{loaded_at_field(sources, key)}` of `{key.path[-1]}` in its latest "
                f"observation is more than {windows[key]:g} hours old (the dbt source's `freshness.warn_after`): the "
                "upstream tool stopped landing rows. The observation is the first step of the daily job."
            ),
        )
        for key in sorted(windows, key=lambda key: key.to_user_string())
    ]

    @dg.multi_asset_check(specs=specs, name="raw_sources_still_arriving", can_subset=True)
    def raw_sources_still_arriving(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        now = time.time()
        for check_key in sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string()):
            yield arrival_result(context.instance, check_key.asset_key, now, windows[check_key.asset_key])

    return raw_sources_still_arriving


def loaded_at_field(sources: dg.AssetsDefinition, key: dg.AssetKey) -> str:
    """The column whose newest value says when `key`'s latest rows landed."""
    column = sources.specs_by_key[key].metadata[LOADED_AT_FIELD]
    return str(getattr(column, "value", column))


def arrival_result(
    instance: dg.DagsterInstance, key: dg.AssetKey, now: float, window_hours: float
) -> dg.AssetCheckResult:
    """Whether `key`'s latest observation saw a row landed within `window_hours` of `now`."""
    records = instance.fetch_observations(key, limit=1).records
    observation = records[0].asset_observation if records else None
    newest = observation.metadata.get(LAST_UPDATED) if observation else None
    if not isinstance(newest, dg.TimestampMetadataValue):
        return dg.AssetCheckResult(
            asset_key=key,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="Never observed with a newest row: run the daily job (its first step observes the raw tables).",
        )
    age_hours = (now - newest.value) / 3600
    return dg.AssetCheckResult(
        asset_key=key,
        passed=age_hours <= window_hours,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"The newest row landed {age_hours:.1f} hours before this check (at most {window_hours:g} allowed)."
        ),
        metadata={"newest_row_age_hours": round(age_hours, 2), LAST_UPDATED: newest},
    )


def observe_table(db: Warehouse, key: dg.AssetKey, metadata: Mapping[str, Any]) -> dg.ObserveResult:
    """One raw table's observation: row count, newest `loaded_at_field` value and a data version; a missing table
    is observed as missing (data version `missing`), so it never stops the other tables' observations."""
    schema, table = key.path
    if not db.table_exists(schema, table):
        return dg.ObserveResult(
            asset_key=key,
            metadata={"table_exists": False, "note": f"{schema}.{table} does not exist in {db.describe()}"},
            data_version=dg.DataVersion("missing"),
        )
    column = metadata.get(LOADED_AT_FIELD)
    newest_sql = f"max({column})" if column else "null"
    count, newest = db.query(f"select count(*), {newest_sql} from {schema}.{table}")[0]
    observed: dict[str, Any] = {"table_exists": True, "dagster/row_count": int(count)}
    if newest is not None:
        newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)  # naive warehouse timestamps are UTC
        observed[LAST_UPDATED] = dg.MetadataValue.timestamp(newest)
    return dg.ObserveResult(
        asset_key=key,
        metadata=observed,
        data_version=dg.DataVersion(f"{int(count)}:{newest.isoformat() if newest is not None else ''}"),
    )


def _in_pool(observed: dg.AssetsDefinition, pool: str) -> dg.AssetsDefinition:
    """The same definition with its step in ``pool``: `multi_observable_source_asset` takes no `pool` (1.13), and
    DuckDB's single writer locks the file against every other process, a reading one too."""
    op = observed.op
    pooled = dg.OpDefinition(
        compute_fn=op.compute_fn,
        name=op.name,
        ins={input_def.name: dg.In.from_definition(input_def) for input_def in op.input_defs},
        outs={output_def.name: dg.Out.from_definition(output_def) for output_def in op.output_defs},
        description=op.description,
        required_resource_keys=op.required_resource_keys,
        tags=op.tags,
        pool=pool,
    )
    return dg.AssetsDefinition.dagster_internal_init(**{**observed.get_attributes_dict(), "node_def": pooled})
