"""The dbt project. Its manifest is prepared by `make prepare` (or `dagster dev`), never at every load."""

from __future__ import annotations

from dagster_dbt import DbtProject

from marketing_pipelines.paths import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
