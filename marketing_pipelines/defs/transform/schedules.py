"""The daily refresh: every asset, once a day (namespace data is synced every 24 hours)."""

from __future__ import annotations

import warnings

import dagster as dg

REFRESH_JOB_NAME = "refresh_marketing_data_job"

with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)  # `include_sources` is marked beta in 1.13
    # include_sources: the raw tables' observation is the run's first step
    _EVERY_ASSET_AND_CHECK = dg.AssetSelection.all(include_sources=True) | dg.AssetSelection.all_asset_checks()

#: Tag of every daily run: the instance runs one at a time (`tag_concurrency_limits` in instance/dagster.yaml).
DAILY_RUN_TAG = "marketing/daily"

refresh_marketing_data_job = dg.define_asset_job(
    name=REFRESH_JOB_NAME,
    selection=_EVERY_ASSET_AND_CHECK,
    tags={DAILY_RUN_TAG: "true"},
    description=(
        "Observe the raw tables (row counts, newest landing), then materialize every asset: dbt seeds, staging "
        "and marts, then audiences and destination syncs."
    ),
)

refresh_marketing_data_schedule = dg.ScheduleDefinition(
    name="refresh_marketing_data_schedule",
    job=refresh_marketing_data_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    description="Daily at 05:00 UTC: refresh the warehouse and sync audiences.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
