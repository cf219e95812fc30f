"""The resources the code location binds, and ``build_resources``, which binds their settings to the environment.

Resources never read the environment themselves: each field holds a value (tests pass configured resources) or a
``dagster.EnvVar`` that Dagster resolves when a run starts, so secrets never enter the run config snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg

from marketing_pipelines.resources.gainsight import GainsightResource
from marketing_pipelines.resources.iterable import IterableResource
from marketing_pipelines.resources.warehouse import WarehouseResource
from marketing_pipelines.warehouse import Warehouse

#: Every setting a resource holds: resource key -> field -> environment variable. Integer fields are in INT_SETTINGS.
SETTINGS: dict[str, dict[str, str]] = {
    "warehouse": {
        "kind": "MARKETING_WAREHOUSE",
        "duckdb_path": "DUCKDB_PATH",
        **{
            f"snowflake_{name}": f"SNOWFLAKE_{name.upper()}"
            for name in (
                "account",
                "user",
                "password",
                "database",
                "schema",
                "role",
                "warehouse",
                "host",
                "port",
                "protocol",
            )
        },
    },
    "iterable": {
        "api_key": "ITERABLE_API_KEY",
        "base_url": "ITERABLE_BASE_URL",
        "marketing_message_type_id": "ITERABLE_MARKETING_MESSAGE_TYPE_ID",
    },
    "gainsight": {"access_key": "GAINSIGHT_ACCESS_KEY", "base_url": "GAINSIGHT_BASE_URL"},
}
INT_SETTINGS = frozenset({"SNOWFLAKE_PORT", "ITERABLE_MARKETING_MESSAGE_TYPE_ID"})


def env_bindings(resource: str, environ: Mapping[str, str] | None = None) -> dict[str, dg.EnvVar]:
    """``dagster.EnvVar`` bindings for the resource's settings that are set (not blank) in ``environ``.

    Only presence is read here; the values are read by Dagster when a run starts. A setting unset when the
    definitions load keeps its default (an API key absent means dry-run): binding an unset variable would fail
    every run at start.
    """
    env = os.environ if environ is None else environ
    bindings: dict[str, dg.EnvVar] = {}
    for field, name in SETTINGS[resource].items():
        if (env.get(name) or "").strip():
            bindings[field] = dg.EnvVar.int(name) if name in INT_SETTINGS else dg.EnvVar(name)
    return bindings


def build_resources(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every resource the code location binds, by key, with each setting set in ``environ`` (default: the process
    environment) bound through ``dagster.EnvVar``. ``build_resources({})`` is every resource at its defaults:
    DuckDB at ``DUCKDB_PATH``'s default, Iterable and Gainsight in dry-run."""
    from dagster_dbt import DbtCliResource

    from marketing_pipelines.resources.dbt import dbt_executable, dbt_project

    return {
        "warehouse": WarehouseResource(**env_bindings("warehouse", environ)),
        "dbt": DbtCliResource(project_dir=dbt_project(), dbt_executable=dbt_executable()),
        "iterable": IterableResource(**env_bindings("iterable", environ)),
        "gainsight": GainsightResource(**env_bindings("gainsight", environ)),
    }


def warehouse_from_environment(environ: Mapping[str, str] | None = None) -> Warehouse:
    """The warehouse the settings in ``environ`` (default: the process environment) select, for command-line tools
    that run outside Dagster (the caller closes it). The values stay in this process: no run config holds them."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field, name in SETTINGS["warehouse"].items():
        if (value := env.get(name)) and value.strip():
            values[field] = int(value) if name in INT_SETTINGS else value
    return WarehouseResource(**values).get_warehouse()


__all__ = [
    "GainsightResource",
    "IterableResource",
    "WarehouseResource",
    "build_resources",
    "env_bindings",
    "warehouse_from_environment",
]
