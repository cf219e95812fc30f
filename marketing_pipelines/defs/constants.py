"""Names shared across domains: owners, the warehouse concurrency pool, and the asset and check keys that one
domain defines and another selects (no domain imports another's modules)."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from marketing_pipelines.signups.tables import EVENT_TABLES

OWNER = "team:marketing-data"

# Every step that writes the warehouse runs in this pool; instance/dagster.yaml limits it to one at a time because
# DuckDB allows a single writing process.
WAREHOUSE_POOL = "warehouse"

WAREHOUSE_KINDS = {"duckdb", "snowflake"}

# The landed signup events (`signups`), which the Iterable signup syncs and checks read.
TRIAL_SIGNUP_EVENTS_KEY = dg.AssetKey(["raw", EVENT_TABLES["trial_signups"]])
FREE_REGISTRATION_EVENTS_KEY = dg.AssetKey(["raw", EVENT_TABLES["free_registrations"]])
# The events audience the Iterable trial event sync sends (`iterable`), which the signup job checks.
TRIAL_EVENTS_KEY = dg.AssetKey(["audiences", "iterable_trial_events"])
# The check on TRIAL_EVENTS_KEY (`iterable`) that the signup job runs.
FREE_REGISTRATIONS_ONLY_FOR_COMPANY = "free_registrations_only_for_company"

# The daily assets (marts, audiences, destination syncs, the signup tables the daily run catches up) must have
# materialized within this window: the 05:00 run plus half a day of slack for a late or retried run.
DAILY_FRESHNESS_WINDOW = timedelta(hours=36)
DAILY_FRESHNESS_WARN_WINDOW = timedelta(hours=26)
DAILY_FRESHNESS_POLICY = dg.FreshnessPolicy.time_window(
    fail_window=DAILY_FRESHNESS_WINDOW, warn_window=DAILY_FRESHNESS_WARN_WINDOW
)
