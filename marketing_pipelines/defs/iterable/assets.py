"""Destination assets that push audiences to Iterable through the shared sync engine."""

from typing import Any

import dagster as dg

from marketing_pipelines.defs.constants import OWNER, WAREHOUSE_POOL
from marketing_pipelines.defs.destinations import push, sync_result
from marketing_pipelines.defs.iterable.resources import IterableResource
from marketing_pipelines.defs.resources import WarehouseResource
from marketing_pipelines.sync.iterable import (
    SIGNUP_PROFILE_AUDIENCE,
    TRIAL_EVENT_AUDIENCE,
    UNSUBSCRIBE_AUDIENCE,
    USER_AUDIENCE,
    IterableSignupProfileDestination,
    IterableTrackBulkDestination,
    IterableUnsubscribeDestination,
    IterableUserDestination,
)

USER_AUDIENCE_KEY = dg.AssetKey(["audiences", "iterable_user_audience"])
UNSUBSCRIBES_KEY = dg.AssetKey(["staging", "stg_marketo__unsubscribes"])
TRIAL_EVENTS_KEY = dg.AssetKey(["audiences", "iterable_trial_events"])


@dg.asset(
    name="iterable_user_sync",
    deps=[USER_AUDIENCE_KEY],
    group_name="iterable",
    owners=[OWNER],
    kinds={"iterable"},
    pool=WAREHOUSE_POOL,
    description=(
        "Pushes new and changed `audiences.iterable_user_audience` rows to Iterable with `users/bulkUpdate` "
        "(1,000 users and < 4 MB a request, 5 requests/s), retrying rejected records on the next run. "
        "Runs after the audience's blocking checks; without ITERABLE_API_KEY it writes `ops.outbox` instead."
    ),
)
def iterable_user_sync(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    client = iterable.get_client()
    destination = IterableUserDestination(client, max_records=iterable.users_per_request)
    return sync_result(push(context, warehouse, USER_AUDIENCE, destination))


@dg.asset(
    name="iterable_unsubscribe_sync",
    deps=[UNSUBSCRIBES_KEY],
    group_name="iterable",
    owners=[OWNER],
    kinds={"iterable"},
    pool=WAREHOUSE_POOL,
    description=(
        "Seed 000: opts every Marketo unsubscribe (`staging.stg_marketo__unsubscribes`, once per event) out of the "
        "opt-in `GitLab Marketing` message type only, with `PUT /api/subscriptions/messageType/{id}?action="
        "unsubscribe` (never updateSubscriptions, which overwrites every other type). Live runs need "
        "ITERABLE_MARKETING_MESSAGE_TYPE_ID; without ITERABLE_API_KEY it writes `ops.outbox` instead."
    ),
)
def iterable_unsubscribe_sync(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    message_type_id, configured = iterable.unsubscribe_message_type_id()  # fails before any request when unset
    client = iterable.get_client()
    destination = IterableUnsubscribeDestination(client, message_type_id=message_type_id)
    report = push(context, warehouse, UNSUBSCRIBE_AUDIENCE, destination)
    metadata: dict[str, Any] = {
        "endpoint": destination.endpoint,
        "message_type_id": message_type_id,
        "message_type_id_configured": configured,
    }
    if not configured:
        metadata["note"] = (
            f"dry-run without a message type id: the outbox path uses {message_type_id} as a placeholder; "
            "set ITERABLE_MARKETING_MESSAGE_TYPE_ID to the opt-in GitLab Marketing type's id"
        )
        context.log.info(metadata["note"])
    return sync_result(report, **metadata)


@dg.asset(
    name="iterable_signup_profile_sync",
    deps=[TRIAL_EVENTS_KEY],
    group_name="iterable",
    owners=[OWNER],
    kinds={"iterable"},
    pool=WAREHOUSE_POOL,
    description=(
        "Seed 000: updates the Iterable profile of every new `audiences.iterable_trial_events` row with its signup "
        "fields (company, companyNamespace, country, employeeBucket, firstName, lastName, latest_trial_start_date, "
        "signupReason, state, userRole) via `users/bulkUpdate`, once per event, before `iterable_trial_event_sync` "
        "tracks the event, so a Journey started by the event sees the fields. Without ITERABLE_API_KEY it writes "
        "`ops.outbox` instead."
    ),
)
def iterable_signup_profile_sync(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    destination = IterableSignupProfileDestination(iterable.get_client(), max_records=iterable.users_per_request)
    return sync_result(push(context, warehouse, SIGNUP_PROFILE_AUDIENCE, destination))


@dg.asset(
    name="iterable_trial_event_sync",
    deps=[TRIAL_EVENTS_KEY, "iterable_signup_profile_sync"],
    group_name="iterable",
    owners=[OWNER],
    kinds={"iterable"},
    pool=WAREHOUSE_POOL,
    description=(
        "Seed 000: sends every new `audiences.iterable_trial_events` row to Iterable with `events/trackBulk` "
        "(1,000 events and < 4 MB a request, 10 requests/s) as `saasTrial` / `saasFreeRegistration`, with an event "
        "`id` derived from `event_id`, so a retried or re-run event never shows twice. Runs after the audience's "
        "blocking checks; without ITERABLE_API_KEY it writes `ops.outbox` instead."
    ),
)
def iterable_trial_event_sync(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    client = iterable.get_client()
    destination = IterableTrackBulkDestination(client)
    return sync_result(push(context, warehouse, TRIAL_EVENT_AUDIENCE, destination))
