"""The dbt project as Dagster assets, with dbt tests as asset checks.

Three steps, each held back by the blocking checks on the assets of the step before it:
1. `staging_dbt_models`: seeds, staging views, intermediate tables and the append-only `initial_source_history`;
2. `mart_dbt_models`: the other marts (`marketing_contacts`, ...), built only once the history passed
   `initial_source_immutable`, so an edited history never reaches a contact;
3. `audience_dbt_models`: the audiences, built only once the marts pass their rule checks, so a broken rule
   stops every destination sync downstream.
"""

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.transform.check_selection import unselected_test_args
from marketing_pipelines.defs.transform.translator import MarketingDbtTranslator
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.resources.dbt import dbt_project

AUDIENCES_SELECTION = "path:models/audiences"
MARTS_SELECTION = "path:models/marts"
HISTORY_SELECTION = "initial_source_history"
# The first step: everything the audited history needs, and the history itself (sources: their tests run here).
STAGING_SELECTION = (
    f"resource_type:seed resource_type:source path:models/staging path:models/intermediate {HISTORY_SELECTION}"
)

translator = MarketingDbtTranslator()


def dbt_model_assets() -> list[dg.AssetsDefinition]:
    """The three dbt steps as assets (reads the manifest: called when definitions load, never at import)."""
    project = dbt_project()

    def step(name: str, select: str, exclude: str = "") -> Callable[..., dg.AssetsDefinition]:
        return dbt_assets(
            manifest=project.manifest_path,
            project=project,
            dagster_dbt_translator=translator,
            name=name,
            select=select,
            exclude=exclude,
            pool=WAREHOUSE_POOL,
        )

    @step("staging_dbt_models", STAGING_SELECTION)
    def staging_dbt_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        """Seeds, staging views, intermediate tables and the append-only Initial Source history, with their dbt
        tests and those of the raw sources."""
        yield from build_with_row_counts(context, dbt, warehouse)

    @step("mart_dbt_models", MARTS_SELECTION, exclude=HISTORY_SELECTION)
    def mart_dbt_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        """The marts built on the audited history (`marketing_contacts`, ...), with their dbt tests."""
        yield from build_with_row_counts(context, dbt, warehouse)

    @step("audience_dbt_models", AUDIENCES_SELECTION)
    def audience_dbt_models(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
    ) -> Iterator[Any]:
        """The audience tables the destination syncs send, built only once the marts pass their rule checks."""
        yield from build_with_row_counts(context, dbt, warehouse)

    return [staging_dbt_models, mart_dbt_models, audience_dbt_models]


def build_with_row_counts(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
) -> Iterator[Any]:
    """`dbt build` the step's selection, then attach `dagster/row_count` to every table it materialized.

    Events are held until dbt exits: DuckDB has one writer, so the tables can only be counted afterwards. Views
    are not counted: counting one runs its whole query (seconds per staging view at 1M contacts).
    """
    db = warehouse.get_warehouse()  # first: a damaged DuckDB file fails here, naming the command that rebuilds it
    with process_environment(warehouse.dbt_environment()):  # dbt's profile reads the warehouse settings from it
        invocation = dbt.cli(["build", *unselected_test_args(context)], context=context)
    events = list(invocation.stream())
    keys = {id(event): _asset_key(context, event) for event in events}
    relations = {tuple(key.path) for key in keys.values() if key is not None and not _is_view(context, key)}
    counts = db.row_counts(sorted(relations)) if relations else {}
    for event in events:
        key = keys[id(event)]
        if key is not None and tuple(key.path) in counts:
            yield event.with_metadata({**event.metadata, "dagster/row_count": counts[tuple(key.path)]})
        else:
            yield event


@contextlib.contextmanager
def process_environment(settings: Mapping[str, str | None]) -> Iterator[None]:
    """Set (a string) or unset (None) environment variables while a process is started, then restore them.

    `DbtCliResource` passes this process's environment to dbt and takes no other; steps of a run execute one at a
    time in the run's process, so nothing else starts a process meanwhile.
    """
    saved = {name: os.environ.get(name) for name in settings}
    try:
        for name, value in settings.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
