"""Filesystem locations of the project (repository root, dbt project) and local data defaults."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

DEFAULT_DUCKDB_PATH = "data/warehouse.duckdb"
DEFAULT_LANDING_DIR = "data/landing"


def resolve_project_path(value: str | Path) -> Path:
    """An absolute path; relative settings (``DUCKDB_PATH``, ``LANDING_DIR``) are relative to the repository root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path
