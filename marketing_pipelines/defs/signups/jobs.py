"""The job the landing-folder sensor launches: ingest one file, check it, then push its profiles and events."""

from __future__ import annotations

import dagster as dg

from marketing_pipelines.defs.constants import (
    FREE_REGISTRATION_EVENTS_KEY,
    FREE_REGISTRATIONS_ONLY_FOR_COMPANY,
    TRIAL_EVENTS_KEY,
    TRIAL_SIGNUP_EVENTS_KEY,
)

INGEST_SIGNUPS_JOB_NAME = "ingest_signups_job"

ingest_signups_job = dg.define_asset_job(
    name=INGEST_SIGNUPS_JOB_NAME,
    selection=(
        dg.AssetSelection.assets(
            TRIAL_SIGNUP_EVENTS_KEY,
            FREE_REGISTRATION_EVENTS_KEY,
            "iterable_signup_profile_sync",
            "iterable_trial_event_sync",
        ).without_checks()  # the dbt source tests on raw run daily: a dbt invocation here costs ~10 s of latency
        | dg.AssetSelection.checks(dg.AssetCheckKey(TRIAL_EVENTS_KEY, FREE_REGISTRATIONS_ONLY_FOR_COMPANY))
    ),
    description=(
        "Loads landed trial signup / free registration files into `raw`, checks the last day's free registrations "
        "for personal ones (read through the staging view over `raw`, so no dbt build is needed; a few are named "
        "and left out of the push, a majority blocks it), then updates the Iterable profiles with `bulkUpdate`, "
        "opts people with a Marketo unsubscribe out of `GitLab Marketing`, and tracks the events with `trackBulk`. "
        "No step waits on dbt, so a signup reaches Iterable within a minute of landing."
    ),
)
