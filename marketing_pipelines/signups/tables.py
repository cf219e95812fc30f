"""The raw event tables, `ops.quarantine` and `ops.ingested_files`.

The event tables' columns are defined once, in the `signups` dbt source
(`dbt_project/models/staging/signups/_signups__sources.yml`): dbt's on-run-start hook creates the tables from it
(`macros/signup_event_tables.sql`), and `event_columns` reads the same file for the ingestion's DDL and inserts and
for the validation.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import yaml

from marketing_pipelines.paths import DBT_PROJECT_DIR

RAW_SCHEMA = "raw"
EVENT_TABLES = {"trial_signups": "trial_signup_events", "free_registrations": "free_registration_events"}
SIGNUP_SOURCES_YML = DBT_PROJECT_DIR / "models" / "staging" / "signups" / "_signups__sources.yml"


@dataclass(frozen=True)
class EventColumn:
    """One column of the raw event tables."""

    name: str
    sql_type: str
    event_field: str | None
    """The key of the landed JSON event it is loaded from; None for a column the loader sets."""
    required: bool
    """The event must carry `event_field`, not null."""


@functools.cache
def event_columns() -> tuple[EventColumn, ...]:
    """The raw event tables' columns in order, as the `signups` dbt source defines them (read on first use)."""
    document = yaml.safe_load(SIGNUP_SOURCES_YML.read_text(encoding="utf-8"))
    (source,) = (source for source in document["sources"] if source["name"] == "signups")
    tables = {table["name"]: table["columns"] for table in source["tables"]}
    columns = tables[EVENT_TABLES["trial_signups"]]
    if any(tables[table] != columns for table in EVENT_TABLES.values()):
        raise ValueError(f"{SIGNUP_SOURCES_YML}: the signup event tables must have the same columns")
    result = []
    for column in columns:
        meta = column.get("config", {}).get("meta", {})
        result.append(
            EventColumn(column["name"], column["data_type"], meta.get("event_field"), bool(meta.get("required")))
        )
    return tuple(result)


def event_column_types() -> dict[str, str]:
    """Each raw event column's SQL type, in table order."""
    return {column.name: column.sql_type for column in event_columns()}


QUARANTINE = "ops.quarantine"
QUARANTINE_COLUMNS: dict[str, str] = {
    "file": "varchar",
    "file_sha256": "varchar",
    "line_number": "bigint",
    "raw_text": "varchar",
    "reason": "varchar",
    "quarantined_at": "timestamp",
}

#: One row per landed file version handled (path + SHA-256 of its content, or `refused:<ctime>` for an entry that is
#: never read): what the daily catch-up skips. `outcome`: loaded, duplicate (same content already loaded under
#: another name), refused (not a regular file, not `*.jsonl`, a name that is not UTF-8, compressed, UTF-16/32) or
#: failed (retried by the next catch-up); `reason` says why. A name that is not UTF-8 is stored with \xNN escapes.
INGESTED_FILES = "ops.ingested_files"
INGESTED_FILES_COLUMNS: dict[str, str] = {
    "file": "varchar",
    "file_sha256": "varchar",
    "kind": "varchar",
    "lines_read": "bigint",
    "loaded": "bigint",
    "duplicates": "bigint",
    "quarantined": "bigint",
    "ingested_at": "timestamp",
    "outcome": "varchar",
    "reason": "varchar",
}
#: Columns added after the ledger's first version (created by older releases without them).
ADDED_INGESTED_FILES_COLUMNS = ("outcome", "reason")


def _columns(columns: dict[str, str]) -> str:
    return ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())


def create_tables_sql() -> list[str]:
    """Idempotent DDL for both raw event tables, the quarantine and the ingested-files ledger."""
    statements = [f"create schema if not exists {RAW_SCHEMA}", "create schema if not exists ops"]
    for table in EVENT_TABLES.values():
        statements.append(f"create table if not exists {RAW_SCHEMA}.{table} ({_columns(event_column_types())})")
    statements.append(f"create table if not exists {QUARANTINE} ({_columns(QUARANTINE_COLUMNS)})")
    statements.append(f"create table if not exists {INGESTED_FILES} ({_columns(INGESTED_FILES_COLUMNS)})")
    statements.extend(
        f"alter table {INGESTED_FILES} add column if not exists {name} {INGESTED_FILES_COLUMNS[name]}"
        for name in ADDED_INGESTED_FILES_COLUMNS
    )
    return statements
