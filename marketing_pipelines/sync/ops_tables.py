"""The operational tables the sync engine keeps in schema `ops`."""

from __future__ import annotations

import os
from collections.abc import Mapping

from marketing_pipelines.warehouse import Warehouse

OPS_SCHEMA = "ops"
SYNC_STATE = f"{OPS_SCHEMA}.sync_state"
SYNC_REJECTIONS = f"{OPS_SCHEMA}.sync_rejections"
SYNC_RUNS = f"{OPS_SCHEMA}.sync_runs"
OUTBOX = f"{OPS_SCHEMA}.outbox"
SYNC_CHANGELOG = f"{OPS_SCHEMA}.sync_changelog"
SYNC_DEFERRALS = f"{OPS_SCHEMA}.sync_deferrals"

#: How long `ops.sync_changelog` keeps a row (days); each sync prunes older rows of its destination, except the
#: row that put each still-synced record in its current state.
RETENTION_DAYS_ENV = "SYNC_CHANGELOG_RETENTION_DAYS"
DEFAULT_RETENTION_DAYS = 400

DDL = [
    f"create schema if not exists {OPS_SCHEMA}",
    f"""create table if not exists {SYNC_STATE} (
        destination varchar not null,
        record_key varchar not null,
        payload_hash varchar not null,
        synced_at timestamp not null,
        run_id varchar
    )""",
    f"""create table if not exists {SYNC_REJECTIONS} (
        destination varchar not null,
        record_key varchar not null,
        payload varchar,
        reason varchar,
        first_attempt_at timestamp not null,
        last_attempt_at timestamp not null,
        attempts integer not null,
        resolved boolean not null,
        resolved_at timestamp
    )""",
    f"""create table if not exists {SYNC_RUNS} (
        run_id varchar,
        destination varchar not null,
        mode varchar not null,
        started_at timestamp not null,
        finished_at timestamp not null,
        considered bigint not null,
        unchanged bigint not null,
        sent bigint not null,
        accepted bigint not null,
        rejected bigint not null,
        requests bigint not null,
        retries bigint not null,
        seconds double not null
    )""",
    f"""create table if not exists {OUTBOX} (
        run_id varchar,
        destination varchar not null,
        endpoint varchar not null,
        record_count integer not null,
        body varchar not null,
        created_at timestamp not null
    )""",
    # One row per record a run sends (added, changed, removed) with its outcome, and one `unchanged-skipped` row
    # per run counting the records left alone (record_key NULL, record_count the count). `person` is the md5 of the
    # trimmed, lower-cased e-mail the record reaches (NULL for companies and invalid rows).
    f"""create table if not exists {SYNC_CHANGELOG} (
        run_id varchar not null,
        destination varchar not null,
        record_key varchar,
        person varchar,
        action varchar not null,
        payload_hash varchar,
        outcome varchar,
        record_count integer not null,
        logged_at timestamp not null
    )""",
    # columns added after the first release: existing warehouses gain them on the next sync
    *(
        f"alter table {SYNC_RUNS} add column if not exists {column} bigint"
        for column in ("added", "changed", "removed")
    ),
    f"alter table {SYNC_RUNS} add column if not exists deferred bigint",
    # communication limits: the journey a changelog row started (NULL: it started none), the journey of the version
    # a destination holds, and the journey starts deferred by the limits (one row per record while deferred)
    f"alter table {SYNC_CHANGELOG} add column if not exists journey varchar",
    f"alter table {SYNC_STATE} add column if not exists journey varchar",
    f"""create table if not exists {SYNC_DEFERRALS} (
        destination varchar not null,
        record_key varchar not null,
        person varchar not null,
        reason varchar not null,
        deferred_at timestamp not null,
        sendable_at timestamp not null,
        run_id varchar
    )""",
]


def ensure_ops_tables(warehouse: Warehouse) -> None:
    """Create the ops schema and tables when missing (idempotent)."""
    warehouse.execute(DDL)


def changelog_retention_days(environ: Mapping[str, str] | None = None) -> int:
    """The changelog retention in days: `SYNC_CHANGELOG_RETENTION_DAYS`, 400 when unset; ValueError unless it is a
    whole number of days from 1 to 36500."""
    raw = (os.environ if environ is None else environ).get(RETENTION_DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise ValueError(f"{RETENTION_DAYS_ENV} must be a whole number of days, not {raw!r}") from None
    if not 1 <= days <= 36_500:
        raise ValueError(f"{RETENTION_DAYS_ENV} must be from 1 to 36500 days, not {days}")
    return days
