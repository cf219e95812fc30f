"""Filesystem locations of the project (repository root, dbt project) and local data defaults."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"
DEFAULT_LANDING_DIR = "data/landing"
