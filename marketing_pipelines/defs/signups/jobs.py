"""The job the landing-folder sensor launches: ingest one file, then build and push what depends on it."""

from __future__ import annotations

import dagster as dg

from marketing_pipelines.defs.signups.assets import FREE_REGISTRATION_EVENTS_KEY, TRIAL_SIGNUP_EVENTS_KEY

INGEST_SIGNUPS_JOB_NAME = "ingest_signups_job"

ingest_signups_job = dg.define_asset_job(
    name=INGEST_SIGNUPS_JOB_NAME,
    selection=dg.AssetSelection.assets(TRIAL_SIGNUP_EVENTS_KEY, FREE_REGISTRATION_EVENTS_KEY).downstream(),
    description=(
        "Loads landed trial signup / free registration files into `raw`, rebuilds the signup staging views and "
        "`audiences.iterable_trial_events`, then sends the new events to Iterable with `trackBulk`."
    ),
)
