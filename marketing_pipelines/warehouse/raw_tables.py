"""The raw-table contract: the columns upstream tools land, with their SQL types."""

from __future__ import annotations

RAW_SCHEMA = "raw"

RAW_TABLES: dict[str, dict[str, str]] = {
    "gitlab_users": {
        "user_id": "bigint",
        "email": "varchar",
        "first_name": "varchar",
        "last_name": "varchar",
        "company": "varchar",
        "country": "varchar",
        "state": "varchar",
        "user_role": "varchar",
        "employee_bucket": "varchar",
        "signup_reason": "varchar",
        "setup_for_company": "boolean",
        "created_at": "timestamp",
    },
    "gitlab_namespaces": {
        "namespace_id": "bigint",
        "namespace_name": "varchar",
        "creator_user_id": "bigint",
        "created_at": "timestamp",
        "plan_title": "varchar",
        "plan_is_paid": "boolean",
        "trial_start_date": "date",
        "trial_end_date": "date",
        "is_setup_for_company": "boolean",
        "glm_source": "varchar",
        "glm_content": "varchar",
        "is_impacted_by_user_limit": "boolean",
        "is_namespace_pql": "boolean",
        "list_of_stages": "varchar",
    },
    "gitlab_members": {"namespace_id": "bigint", "user_id": "bigint", "access_level": "integer"},
    "crm_persons": {
        "person_id": "bigint",
        "email": "varchar",
        "record_type": "varchar",
        "status": "varchar",
        "initial_source": "varchar",
        "person_score": "varchar",  # as the CRM exports it: usually a whole number, sometimes text or negative
        "account_id": "bigint",
        "created_at": "timestamp",
        "updated_at": "timestamp",
        "merged_into_person_id": "bigint",
    },
    "marketo_unsubscribes": {"event_id": "varchar", "email": "varchar", "unsubscribed_at": "timestamp"},
    "cs_accounts": {
        "account_id": "bigint",
        "account_name": "varchar",
        "carr": "varchar",  # as the CS platform exports it: usually a number, sometimes text (see stg_cs__accounts)
        "technical_account_manager": "varchar",
        "account_owner_team": "varchar",
        "products_purchased": "varchar",
        "deployment_type": "varchar",
        "support_level": "varchar",
        "namespace_id": "bigint",
        "created_at": "timestamp",
        "renewal_date": "date",
    },
    "cs_contacts": {"account_id": "bigint", "person_id": "bigint", "email": "varchar", "gitlab_role": "varchar"},
}


def create_raw_tables_sql(*, replace: bool = False) -> list[str]:
    """DDL that creates every raw table empty (used by tests and by fresh warehouses)."""
    verb = "create or replace table" if replace else "create table if not exists"
    statements = [f"create schema if not exists {RAW_SCHEMA}"]
    for table, columns in RAW_TABLES.items():
        body = ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
        statements.append(f"{verb} {RAW_SCHEMA}.{table} ({body})")
    return statements
