"""How dbt nodes appear in Dagster: keys by warehouse schema, groups by layer, owners, kinds and freshness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from marketing_pipelines.defs.constants import DAILY_FRESHNESS_POLICY, OWNER

RAW_SCHEMA = "raw"
#: Layers the daily run rebuilds for people and destinations: each must have materialized within the daily window.
DAILY_LAYERS = frozenset({"marts", "audiences"})
#: The group of the dbt seeds: reference tables that staging and the marts read (upstream of both).
REFERENCE_GROUP = "reference"
#: dagster-dbt's key for the DbtProject on each spec: not serializable (the UI shows "(unserializable)"), and the
#: translator supplies the project itself (``project``) wherever dagster-dbt would read it from there.
PROJECT_METADATA_KEY = "dagster_dbt/project"


class MarketingDbtTranslator(DagsterDbtTranslator):
    """Keys are ``[schema, table]`` so lineage reads like the warehouse: ``raw/crm_persons`` → ``marts/...``.

    ``warehouse_kind`` (``duckdb`` or ``snowflake``) is the kind the assets show next to ``dbt``; ``project`` links
    each asset to its SQL or seed file (code references).
    """

    def __init__(self, warehouse_kind: str = "duckdb", project: DbtProject | None = None) -> None:
        super().__init__(
            settings=DagsterDbtTranslatorSettings(
                enable_source_tests_as_checks=True, enable_code_references=project is not None
            )
        )
        self.warehouse_kind = warehouse_kind.lower()
        self.project = project

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project or self.project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            key = dg.AssetKey([RAW_SCHEMA, props["name"]])
            group = RAW_SCHEMA
        else:
            key = dg.AssetKey([props["schema"], props["name"]])
            group = REFERENCE_GROUP if props["resource_type"] == "seed" else props["schema"]
        metadata = {name: value for name, value in spec.metadata.items() if name != PROJECT_METADATA_KEY}
        return spec.replace_attributes(
            key=key,
            group_name=group,
            owners=[OWNER],
            kinds={"dbt", self.warehouse_kind},
            freshness_policy=DAILY_FRESHNESS_POLICY if group in DAILY_LAYERS else spec.freshness_policy,
            metadata={
                **metadata,
                "dagster/table_name": f"{key.path[0]}.{key.path[1]}",
                "dagster/storage_kind": self.warehouse_kind,
            },
        )

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        """The yml description, else one generated sentence (never the raw SQL)."""
        if description := (dbt_resource_props.get("description") or "").strip():
            return description
        kind = {"seed": "Reference table", "source": "Raw table"}.get(dbt_resource_props["resource_type"])
        if kind is None:
            kind = f"dbt {dbt_resource_props.get('config', {}).get('materialized') or 'model'}"
        return f"{kind} {dbt_resource_props['name']}."

    def get_asset_check_spec(
        self, asset_spec: dg.AssetSpec, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project or self.project)
        if spec is None:
            return None
        return spec._replace(description=dbt_test_description(manifest["nodes"][unique_id], asset_spec.key))


def dbt_test_description(test: Mapping[str, Any], asset_key: dg.AssetKey) -> str:
    """What a dbt test checks, in one line (``dbt test `not_null` on column `email` of `marts.x```), then its own
    description from the yml, if any."""
    test_name = (test.get("test_metadata") or {}).get("name") or test["name"]
    column = test.get("column_name")
    target = f"column `{column}` of `{'.'.join(asset_key.path)}`" if column else f"`{'.'.join(asset_key.path)}`"
    headline = f"dbt test `{test_name}` on {target}."
    meta = {**(test.get("meta") or {}), **(test.get("config", {}).get("meta") or {})}
    own = (meta.get("description") or test.get("description") or "").strip()
    return f"{headline}\n\n{own}" if own else headline
