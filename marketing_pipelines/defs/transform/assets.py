"""The dbt project as Dagster assets, with dbt tests as asset checks.

Three steps, each held back by the blocking checks on the assets of the step before it:
1. `staging_dbt_models`: seeds, staging views, intermediate tables and the append-only `initial_source_history`;
2. `mart_dbt_models`: the other marts (`marketing_contacts`, ...), built only once the history passed
   `initial_source_immutable`, so an edited history never reaches a contact;
3. `audience_dbt_models`: the audiences, built only once the marts pass their rule checks, so a broken rule
   stops every destination sync downstream.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.defs.transform.project import dbt_project
from marketing_pipelines.defs.transform.translator import MarketingDbtTranslator

AUDIENCES_SELECTION = "path:models/audiences"
MARTS_SELECTION = "path:models/marts"
HISTORY_SELECTION = "initial_source_history"
# The first step: everything the audited history needs, and the history itself (sources: their tests run here).
STAGING_SELECTION = (
    f"resource_type:seed resource_type:source path:models/staging path:models/intermediate {HISTORY_SELECTION}"
)

translator = MarketingDbtTranslator()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    name="staging_dbt_models",
    select=STAGING_SELECTION,
    pool=WAREHOUSE_POOL,
)
def staging_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """Seeds, staging views, intermediate tables and the append-only Initial Source history, with their dbt tests
    and those of the raw sources."""
    yield from build_with_row_counts(context, dbt, warehouse)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    name="mart_dbt_models",
    select=MARTS_SELECTION,
    exclude=HISTORY_SELECTION,
    pool=WAREHOUSE_POOL,
)
def mart_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """The marts built on the audited history (`marketing_contacts`, ...), with their dbt tests."""
    yield from build_with_row_counts(context, dbt, warehouse)


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    name="audience_dbt_models",
    select=AUDIENCES_SELECTION,
    pool=WAREHOUSE_POOL,
)
def audience_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """The audience tables the destination syncs send, built only once the marts pass their rule checks."""
    yield from build_with_row_counts(context, dbt, warehouse)


def build_with_row_counts(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """`dbt build` the step's selection, then attach `dagster/row_count` to every table it materialized.

    Events are held until dbt exits: DuckDB has one writer, so the tables can only be counted afterwards. Views
    are not counted: counting one runs its whole query (seconds per staging view at 1M contacts).
    """
    db = warehouse.get_warehouse()  # first: a damaged DuckDB file fails here, naming the command that rebuilds it
    events = list(dbt.cli(["build"], context=context).stream())
    keys = {id(event): _asset_key(context, event) for event in events}
    relations = {tuple(key.path) for key in keys.values() if key is not None and not _is_view(context, key)}
    counts = db.row_counts(sorted(relations)) if relations else {}
    for event in events:
        key = keys[id(event)]
        if key is not None and tuple(key.path) in counts:
            yield event.with_metadata({**event.metadata, "dagster/row_count": counts[tuple(key.path)]})
        else:
            yield event


def _is_view(context: dg.AssetExecutionContext, key: dg.AssetKey) -> bool:
    metadata = context.assets_def.specs_by_key[key].metadata
    return metadata.get("dagster-dbt/materialization_type") == "view"


def _asset_key(context: dg.AssetExecutionContext, event: Any) -> dg.AssetKey | None:
    """The asset a dbt materialization event is for (None for check results and other events)."""
    if isinstance(event, dg.Output):
        return context.asset_key_for_output(event.output_name)
    if isinstance(event, dg.AssetMaterialization):
        return event.asset_key
    return None
