"""The dbt project and the dbt executable the ``dbt`` resource runs."""

from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

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
