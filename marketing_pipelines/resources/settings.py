"""Which environment variable each resource setting is bound to."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

#: The communication limits, one value for every destination resource (each carries them).
LIMIT_SETTINGS = {"emails_per_day": "MARKETING_EMAILS_PER_DAY", "emails_per_week": "MARKETING_EMAILS_PER_WEEK"}
#: Every setting a resource holds: resource key -> field -> environment variable. Integer fields are in INT_SETTINGS.
SETTINGS: dict[str, dict[str, str]] = {
    "warehouse": {
        "kind": "MARKETING_WAREHOUSE",
        "duckdb_path": "DUCKDB_PATH",
        "duckdb_memory_limit": "DUCKDB_MEMORY_LIMIT",
        "duckdb_threads": "DUCKDB_THREADS",
        **{
            f"snowflake_{name}": f"SNOWFLAKE_{name.upper()}"
            for name in (
                "account",
                "user",
                "password",
                "database",
                "schema",
                "role",
                "warehouse",
                "host",
                "port",
                "protocol",
            )
        },
    },
    "iterable": {
        "api_key": "ITERABLE_API_KEY",
        "base_url": "ITERABLE_BASE_URL",
        "marketing_message_type_id": "ITERABLE_MARKETING_MESSAGE_TYPE_ID",
        **LIMIT_SETTINGS,
    },
    "gainsight": {"access_key": "GAINSIGHT_ACCESS_KEY", "base_url": "GAINSIGHT_BASE_URL", **LIMIT_SETTINGS},
    "alerts": {
        "smtp_host": "ALERT_SMTP_HOST",
        "smtp_port": "ALERT_SMTP_PORT",
        "smtp_user": "ALERT_SMTP_USER",
        "smtp_password": "ALERT_SMTP_PASSWORD",
        "email_from": "ALERT_EMAIL_FROM",
        "email_to": "ALERT_EMAIL_TO",
        "slack_webhook_url": "ALERT_SLACK_WEBHOOK_URL",
        "ui_base_url": "DAGSTER_UI_BASE_URL",
    },
    "sync_health": {
        "max_rejection_rate": "SYNC_HEALTH_MAX_REJECTION_RATE",
        "max_rejection_age_hours": "SYNC_HEALTH_MAX_REJECTION_AGE_HOURS",
    },
}
INT_SETTINGS = frozenset(
    {
        "SNOWFLAKE_PORT",
        "DUCKDB_THREADS",
        "ITERABLE_MARKETING_MESSAGE_TYPE_ID",
        "MARKETING_EMAILS_PER_DAY",
        "MARKETING_EMAILS_PER_WEEK",
        "ALERT_SMTP_PORT",
        "SYNC_HEALTH_MAX_REJECTION_AGE_HOURS",
    }
)


def env_bindings(resource: str, environ: Mapping[str, str] | None = None) -> dict[str, dg.EnvVar]:
    """``dagster.EnvVar`` bindings for the resource's settings that are set (not blank) in ``environ``.

    Only presence is read here; the values are read by Dagster when a run starts. A setting unset when the
    definitions load keeps its default (an API key absent means dry-run): binding an unset variable would fail
    every run at start.
    """
    env = os.environ if environ is None else environ
    bindings: dict[str, dg.EnvVar] = {}
    for field, name in SETTINGS[resource].items():
        if (env.get(name) or "").strip():
            bindings[field] = dg.EnvVar.int(name) if name in INT_SETTINGS else dg.EnvVar(name)
    return bindings
