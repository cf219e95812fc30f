"""The code location: every Dagster object under ``defs/`` (one folder per domain) plus global policy.

``load_definitions_from_package_module`` rather than ``load_from_defs_folder``: the latter also imports every
installed Dagster plugin to describe its component types (dagster-snowflake alone pulls in snowflake.core, ~6 s),
which would triple the load time the UI pays on every reload. This project has no YAML components.
"""

from __future__ import annotations

import warnings

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    from marketing_pipelines import defs as domains
    from marketing_pipelines.defs.resources import build_resources

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)  # the loader is marked preview in 1.13
        return dg.load_definitions_from_package_module(
            domains,
            resources=build_resources(),
            # Steps of a run execute one at a time in the run's process: the embedded DuckDB warehouse has a
            # single writer, and it saves a process start per step.
            executor=dg.in_process_executor,
        )
