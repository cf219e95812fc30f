"""The daily refresh: every asset, once a day (namespace data is synced every 24 hours)."""

from __future__ import annotations

import dagster as dg

REFRESH_JOB_NAME = "refresh_marketing_data_job"

refresh_marketing_data_job = dg.define_asset_job(
    name=REFRESH_JOB_NAME,
    selection=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
    description="Materialize every asset: dbt seeds, staging and marts, then audiences and destination syncs.",
)

refresh_marketing_data_schedule = dg.ScheduleDefinition(
    name="refresh_marketing_data_schedule",
    job=refresh_marketing_data_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    description="Daily at 05:00 UTC: refresh the warehouse and sync audiences.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
