"""The dbt project and the dbt executable the ``dbt`` resource runs."""

from __future__ import annotations

import functools
import importlib.metadata
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dagster_dbt import DbtCliResource, DbtProject
from packaging.version import Version

from marketing_pipelines.paths import DBT_PROJECT_DIR


@functools.cache
def dbt_project() -> DbtProject:
    """The dbt project (reads `dbt_project.yml`: called when definitions load, never at import).

    Its manifest is prepared by `make prepare` (`dbt parse`), never when definitions load.
    """
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """The `dbt` installed beside this interpreter (the project's venv, activated or not), else `dbt` on PATH."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.is_file() else shutil.which("dbt") or "dbt"


class ProjectDbtCliResource(DbtCliResource):
    """dagster-dbt's ``DbtCliResource`` without two start-up costs the dbt steps never use (seconds per run):

    - the ``dbt --version`` subprocess it starts once per run to learn the version, when the executable is the
      ``dbt`` installed beside this interpreter: then it is the installed dbt-core's version;
    - the dbt adapter it builds in this process before every invocation, which only its ``fetch_row_counts`` and
      ``fetch_column_metadata`` read: the steps count rows and read column types themselves, in one query each.
    """

    @functools.cached_property
    def _cli_version(self) -> Version:
        if Path(self.dbt_executable) == Path(sys.executable).with_name("dbt"):
            return Version(importlib.metadata.version("dbt-core"))
        return DbtCliResource._cli_version.func(self)  # type: ignore[attr-defined]

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None
