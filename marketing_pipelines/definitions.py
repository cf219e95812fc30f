"""The code location: everything under ``defs/`` plus global policy."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(project_root=Path(__file__).parent.parent),
        # Steps of a run execute one at a time in the run's process: the embedded DuckDB warehouse has a
        # single writer, and it saves a process start per step.
        dg.Definitions(executor=dg.in_process_executor),
    )
