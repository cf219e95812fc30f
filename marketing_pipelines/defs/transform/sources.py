"""The raw tables upstream tools land, shown in the lineage as observable source assets.

Observing them (the first step of the daily run) records each table's row count and, where the dbt source declares
a `loaded_at_field`, its newest value as `dagster/last_updated_timestamp`: how recent the latest landing is.
"""

from __future__ import annotations

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
