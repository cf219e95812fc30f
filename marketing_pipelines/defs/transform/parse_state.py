"""dbt's partial-parse state, kept between the dbt steps so each step parses only what changed.

dagster-dbt gives every invocation a fresh target folder and seeds it with the project's
``target/partial_parse.msgpack``. dbt reuses that file only if it was written under the same profile (the DuckDB
path is part of it); the project's file is the one `dbt parse` wrote for the default warehouse, so every step ran
a full parse (seconds each). Here each invocation's folder is seeded with the state the last invocation under the
same warehouse settings left, and its own state is kept for the next. dbt still checks every file, variable and
setting before reusing the state, so a stale one only costs a full parse.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from marketing_pipelines.resources.dbt import dbt_project

PARTIAL_PARSE_FILE = "partial_parse.msgpack"
STATE_FOLDER = "partial_parse"
KEPT_STATES = 8
"""States kept (the most recently written): one per warehouse a process builds, a few MB each."""


def state_file(settings: Mapping[str, str | None]) -> Path:
    """Where the parse state for these warehouse settings is kept (one file per warehouse, so runs against
    different warehouses do not replace each other's)."""
    identity = "|".join(f"{name}={value}" for name, value in sorted(settings.items()) if "PASSWORD" not in name)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    project = dbt_project()
    return project.project_dir / project.target_path / STATE_FOLDER / f"{digest}.msgpack"


def seeded_target_path(context: dg.AssetExecutionContext, settings: Mapping[str, str | None]) -> Path:
    """A fresh target folder for one dbt invocation (named as dagster-dbt names them), holding the parse state of
    the last invocation under ``settings`` when there is one."""
    project = dbt_project()
    name = f"{context.op_execution_context.op.name}-{context.run.run_id[:7]}-{uuid.uuid4().hex[:7]}"
    target = project.project_dir / project.target_path / name
    target.mkdir(parents=True, exist_ok=True)
    kept = state_file(settings)
    if kept.is_file():
        shutil.copyfile(kept, target / PARTIAL_PARSE_FILE)
    return target


def keep_state(target: Path, settings: Mapping[str, str | None]) -> None:
    """Keep the parse state an invocation wrote in ``target`` for the next one under ``settings`` (replaced
    atomically: a concurrent reader sees the old file or the new one); only the `KEPT_STATES` newest stay."""
    written = target / PARTIAL_PARSE_FILE
    if not written.is_file():
        return
    kept = state_file(settings)
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_name(f"{kept.name}.{os.getpid()}.{uuid.uuid4().hex[:7]}")
    shutil.copyfile(written, partial)
    os.replace(partial, kept)
    states = sorted(kept.parent.glob("*.msgpack"), key=_modified, reverse=True)
    for stale in states[KEPT_STATES:]:
        stale.unlink(missing_ok=True)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # removed by a concurrent invocation
        return 0.0
