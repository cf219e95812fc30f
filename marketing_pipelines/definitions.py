"""The code location: every Dagster object under ``defs/`` (one folder per domain) plus global policy.

``load_definitions_from_package_module`` rather than ``load_from_defs_folder``: the latter also imports every
installed Dagster plugin to describe its component types (dagster-snowflake alone pulls in snowflake.core, ~6 s),
which would triple the load time the UI pays on every reload. This project has no YAML components.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._record import copy


def build_definitions(resources: Mapping[str, Any]) -> dg.Definitions:
    """Every object under ``defs/``, the dbt assets and raw sources read from the manifest, bound to ``resources``.

    Importing the modules reads no file; the manifest is read here, when the definitions load.
    """
    from marketing_pipelines import defs as domains
    from marketing_pipelines.defs.transform.assets import dbt_model_assets
    from marketing_pipelines.defs.transform.sources import raw_freshness_check, raw_sources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # the loader is marked preview in 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)  # code references are marked beta in 1.13
        modules = dg.load_definitions_from_package_module(domains)
        kind = warehouse_kind(resources)
        sources = raw_sources(kind)
        return dg.Definitions.merge(
            copy(modules, assets=dg.with_source_code_references(list(modules.assets or []))),
            dg.Definitions(
                assets=[*dbt_model_assets(kind), sources],
                asset_checks=[raw_freshness_check(sources)],
                resources=resources,
                # Steps of a run execute one at a time in the run's process: the embedded DuckDB warehouse has a
                # single writer, and it saves a process start per step.
                executor=dg.in_process_executor,
            ),
        )


def warehouse_kind(resources: Mapping[str, Any]) -> str:
    """The kind of the bound warehouse (``duckdb`` or ``snowflake``), which the assets show; its setting's value
    when the resource holds a binding to it."""
    kind = getattr(resources.get("warehouse"), "kind", None) or "duckdb"
    if isinstance(kind, dg.EnvVar):
        kind = kind.get_value() or "duckdb"
    return str(kind).lower()


@dg.definitions
def defs() -> dg.Definitions:
    """The code location, its resources' settings bound to the environment."""
    from marketing_pipelines.resources import build_resources

    return build_definitions(build_resources())
