"""The dbt project as Dagster assets, with dbt tests as asset checks.

Three steps, each held back by the blocking checks on the assets of the step before it:
1. `staging_dbt_models`: seeds, staging views, intermediate tables and the append-only `initial_source_history`;
2. `mart_dbt_models`: the other marts (`marketing_contacts`, ...), built only once the history passed
   `initial_source_immutable`, so an edited history never reaches a contact;
3. `audience_dbt_models`: the audiences, built only once the marts pass their rule checks, so a broken rule
   stops every destination sync downstream.
"""

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from marketing_pipelines.defs.constants import WAREHOUSE_POOL
from marketing_pipelines.defs.rule_checks import SAMPLE_SIZE, records_table
from marketing_pipelines.defs.transform.check_selection import unselected_test_args
from marketing_pipelines.defs.transform.parse_state import keep_state, seeded_target_path
from marketing_pipelines.defs.transform.translator import MarketingDbtTranslator
from marketing_pipelines.pii import mask_emails_in
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.resources.dbt import dbt_project
from marketing_pipelines.warehouse import Warehouse

AUDIENCES_SELECTION = "path:models/audiences"
MARTS_SELECTION = "path:models/marts"
HISTORY_SELECTION = "initial_source_history"
# The first step: everything the audited history needs, and the history itself (sources: their tests run here).
STAGING_SELECTION = (
    f"resource_type:seed resource_type:source path:models/staging path:models/intermediate {HISTORY_SELECTION}"
)


def dbt_model_assets(warehouse_kind: str = "duckdb") -> list[dg.AssetsDefinition]:
    """The three dbt steps as assets (reads the manifest: called when definitions load, never at import), with the
    kind of the warehouse they build in (``duckdb`` or ``snowflake``)."""
    project = dbt_project()
    translator = MarketingDbtTranslator(warehouse_kind=warehouse_kind, project=project)

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
    """`dbt build` the step's selection, then attach `dagster/row_count` to every table it materialized,
    `dagster/column_schema` (warehouse types, yml descriptions) to every table and view, and up to 20 failing rows
    (e-mails masked) to every dbt test that failed.

    Events are held until dbt exits: DuckDB has one writer, so the tables can only be read afterwards. Views
    are not counted: counting one runs its whole query (seconds per staging view at 1M contacts). The columns of
    every relation come from one information_schema query; failing rows are read only for the tests that failed.
    """
    db = warehouse.get_warehouse()  # first: a damaged DuckDB file fails here, naming the command that rebuilds it
    settings = warehouse.dbt_environment()
    target = seeded_target_path(context, settings)  # dbt parses only what changed since the last step
    with process_environment(settings):  # dbt's profile reads the warehouse settings from it
        invocation = dbt.cli(["build", *unselected_test_args(context)], context=context, target_path=target)
    try:
        events = list(invocation.stream())
    finally:
        keep_state(target, settings)  # written once dbt parsed, whether the build then passed or not
    keys = {id(event): _asset_key(context, event) for event in events}
    built = sorted({tuple(key.path) for key in keys.values() if key is not None})
    tables = [relation for relation in built if not _is_view(context, dg.AssetKey(list(relation)))]
    counts = db.row_counts(tables) if tables else {}
    columns = column_types(db, built) if built else {}
    compiled = _compiled_tests(invocation.target_path) if any(_failed_check(event) for event in events) else {}
    for event in events:
        key = keys[id(event)]
        if key is not None:
            relation = tuple(key.path)
            extra: dict[str, Any] = {}
            if relation in counts:
                extra["dagster/row_count"] = counts[relation]
            if relation in columns:
                extra["dagster/column_schema"] = _typed_schema(context, key, columns[relation])
            yield event.with_metadata({**event.metadata, **extra}) if extra else event
        elif _failed_check(event) and (sql := compiled.get(_test_id(event))):
            yield event.with_metadata({**event.metadata, "failing_rows": failing_rows(db, sql)})
        else:
            yield event


def column_types(db: Warehouse, relations: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], list[tuple[str, str]]]:
    """``(column, warehouse type)`` in table order for each existing relation ``(schema, table)``, in one query."""
    wanted = set(relations)
    schemas = ", ".join(f"'{schema}'" for schema in sorted({schema for schema, _ in wanted}))
    rows = db.query(
        "select lower(table_schema), lower(table_name), lower(column_name), data_type"
        " from information_schema.columns"
        f" where upper(table_catalog) = upper(current_database()) and lower(table_schema) in ({schemas})"
        " order by 1, 2, ordinal_position"
    )
    found: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for schema, table, column, data_type in rows:
        if (schema, table) in wanted:
            found.setdefault((schema, table), []).append((column, str(data_type).lower()))
    return found


def failing_rows(db: Warehouse, test_sql: str) -> dg.TableMetadataValue:
    """Up to `SAMPLE_SIZE` rows a failed dbt test returned (its compiled query, run again), e-mails masked.

    Only failed tests are read again, so a passing build costs nothing: dbt's ``store_failures`` would write a
    table for every test of every build.
    """
    frame = db.query_df(f"select * from ({test_sql.strip().rstrip(';')}) as failing limit {SAMPLE_SIZE}")
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return records_table(
        [
            {str(name): mask_emails_in(v) if isinstance(v, str) else v for name, v in record.items()}
            for record in records
        ],
        [str(c) for c in frame.columns],
    )


def _failed_check(event: Any) -> bool:
    return isinstance(event, dg.AssetCheckResult) and not event.passed and "unique_id" in event.metadata


def _test_id(event: dg.AssetCheckResult) -> str:
    return str(event.metadata["unique_id"].value)


def _compiled_tests(target_path: Path) -> dict[str, str]:
    """The compiled query of each dbt test of an invocation, by unique id (from its ``run_results.json``)."""
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    return {
        r["unique_id"]: r["compiled_code"]
        for r in results
        if r["unique_id"].startswith("test.") and r.get("compiled_code")
    }


def _typed_schema(
    context: dg.AssetExecutionContext, key: dg.AssetKey, columns: list[tuple[str, str]]
) -> dg.TableSchema:
    """The warehouse's columns and types, with each column's description from the dbt yml where it has one."""
    declared = context.assets_def.specs_by_key[key].metadata.get("dagster/column_schema")
    descriptions = {column.name.lower(): column.description for column in declared.columns} if declared else {}
    return dg.TableSchema(
        columns=[dg.TableColumn(name, data_type, description=descriptions.get(name)) for name, data_type in columns]
    )


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
