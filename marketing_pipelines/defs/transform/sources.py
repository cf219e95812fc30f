"""The raw tables upstream tools land, shown in the lineage as external source assets."""

from __future__ import annotations

import dagster as dg
from dagster_dbt.dbt_manifest import validate_manifest

from marketing_pipelines.defs.constants import OWNER
from marketing_pipelines.defs.transform.translator import MarketingDbtTranslator
from marketing_pipelines.resources.dbt import dbt_project

#: dbt sources whose raw tables a Dagster asset of this project loads (so they are not external sources).
LOADED_BY_DAGSTER = frozenset({"signups"})


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
                },
            )
        )
    return specs
