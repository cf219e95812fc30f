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


class MarketingDbtTranslator(DagsterDbtTranslator):
    """Keys are ``[schema, table]`` so lineage reads like the warehouse: ``raw/crm_persons`` → ``marts/...``."""

    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True))

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] == "source":
            key = dg.AssetKey([RAW_SCHEMA, props["name"]])
            group = RAW_SCHEMA
        else:
            key = dg.AssetKey([props["schema"], props["name"]])
            group = props["schema"]
        return spec.replace_attributes(
            key=key,
            group_name=group,
            owners=[OWNER],
            kinds={"dbt", "duckdb", "snowflake"},
            freshness_policy=DAILY_FRESHNESS_POLICY if group in DAILY_LAYERS else spec.freshness_policy,
        ).merge_attributes(metadata={"dagster/table_name": f"{key.path[0]}.{key.path[1]}"})
