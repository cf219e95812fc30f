"""The raw event tables, `ops.quarantine` and `ops.ingested_files`; dbt's on-run-start hook creates the same raw tables
(`dbt_project/macros/signup_event_tables.sql`), and a test keeps the two definitions equal."""

from __future__ import annotations

RAW_SCHEMA = "raw"
EVENT_TABLES = {"trial_signups": "trial_signup_events", "free_registrations": "free_registration_events"}

EVENT_COLUMNS: dict[str, str] = {
    "event_id": "varchar",
    "occurred_at": "timestamp",
    "email": "varchar",
    "user_id": "bigint",
    "namespace_id": "bigint",
    "company": "varchar",
    "company_namespace": "boolean",
    "country": "varchar",
    "employee_bucket": "varchar",
    "first_name": "varchar",
    "last_name": "varchar",
    "latest_trial_start_date": "date",
    "signup_reason": "varchar",
    "state": "varchar",
    "user_role": "varchar",
    "setup_for_company": "boolean",
    "source_file": "varchar",
    "line_number": "bigint",
    "loaded_at": "timestamp",
}

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
        statements.append(f"create table if not exists {RAW_SCHEMA}.{table} ({_columns(EVENT_COLUMNS)})")
    statements.append(f"create table if not exists {QUARANTINE} ({_columns(QUARANTINE_COLUMNS)})")
    statements.append(f"create table if not exists {INGESTED_FILES} ({_columns(INGESTED_FILES_COLUMNS)})")
    statements.extend(
        f"alter table {INGESTED_FILES} add column if not exists {name} {INGESTED_FILES_COLUMNS[name]}"
        for name in ADDED_INGESTED_FILES_COLUMNS
    )
    return statements
