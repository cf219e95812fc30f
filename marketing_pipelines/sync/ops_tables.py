"""The operational tables the sync engine keeps in schema `ops`."""

from __future__ import annotations

from marketing_pipelines.warehouse import Warehouse

OPS_SCHEMA = "ops"
SYNC_STATE = f"{OPS_SCHEMA}.sync_state"
SYNC_REJECTIONS = f"{OPS_SCHEMA}.sync_rejections"
SYNC_RUNS = f"{OPS_SCHEMA}.sync_runs"
OUTBOX = f"{OPS_SCHEMA}.outbox"

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
]


def ensure_ops_tables(warehouse: Warehouse) -> None:
    """Create the ops schema and tables when missing (idempotent)."""
    warehouse.execute(DDL)
