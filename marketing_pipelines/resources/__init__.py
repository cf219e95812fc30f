"""The resources the code location binds, and ``build_resources``, which binds their settings to the environment.

Resources never read the environment themselves: each field holds a value (tests pass configured resources) or a
``dagster.EnvVar`` that Dagster resolves when a run starts, so secrets never enter the run config snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from marketing_pipelines.resources.alerts import AlertResource
from marketing_pipelines.resources.gainsight import GainsightResource
from marketing_pipelines.resources.iterable import IterableResource
from marketing_pipelines.resources.settings import INT_SETTINGS, SETTINGS, env_bindings
from marketing_pipelines.resources.sync_health import SyncHealthResource
from marketing_pipelines.resources.warehouse import WarehouseResource
from marketing_pipelines.warehouse import Warehouse


def build_resources(environ: Mapping[str, str] | None = None, **resources: Any) -> dict[str, Any]:
    """Every resource the code location binds, by key, with each setting set in ``environ`` (default: the process
    environment) bound through ``dagster.EnvVar``; a resource passed by key replaces the built one.

    ``build_resources({}, warehouse=WarehouseResource(duckdb_path=...))`` is every other resource at its defaults
    (Iterable and Gainsight in dry-run): what tests run the code location with.
    """
    from marketing_pipelines.resources.dbt import ProjectDbtCliResource, dbt_executable, dbt_project

    built = {
        "warehouse": WarehouseResource(**env_bindings("warehouse", environ)),
        "dbt": ProjectDbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable()),
        "iterable": IterableResource(**env_bindings("iterable", environ)),
        "gainsight": GainsightResource(**env_bindings("gainsight", environ)),
        "alerts": AlertResource(**env_bindings("alerts", environ)),
        "sync_health": SyncHealthResource(**env_bindings("sync_health", environ)),
    }
    unknown = set(resources) - set(built)
    if unknown:
        raise TypeError(f"no resource {sorted(unknown)}; the code location binds {sorted(built)}")
    return {**built, **resources}


def warehouse_resource_from(settings: Mapping[str, str]) -> WarehouseResource:
    """A warehouse resource holding the values of the warehouse settings in ``settings`` (by variable name, e.g.
    ``{"MARKETING_WAREHOUSE": "snowflake", "SNOWFLAKE_ACCOUNT": ...}``); blank or absent ones keep their defaults."""
    values: dict[str, Any] = {}
    for field, name in SETTINGS["warehouse"].items():
        if (value := settings.get(name)) and value.strip():
            values[field] = int(value) if name in INT_SETTINGS else value
    return WarehouseResource(**values)


def warehouse_from_environment() -> Warehouse:
    """The warehouse the process environment selects, for command-line tools that run outside Dagster (the caller
    closes it). The values stay in this process: no run config holds them."""
    return warehouse_resource_from(os.environ).get_warehouse()


__all__ = [
    "INT_SETTINGS",
    "SETTINGS",
    "AlertResource",
    "GainsightResource",
    "IterableResource",
    "SyncHealthResource",
    "WarehouseResource",
    "build_resources",
    "env_bindings",
    "warehouse_from_environment",
    "warehouse_resource_from",
]
