"""Destination assets that push audiences to Iterable through the shared sync engine."""

from typing import Any

import dagster as dg

from marketing_pipelines.defs.constants import DAILY_FRESHNESS_POLICY, OWNER, TRIAL_EVENTS_KEY, WAREHOUSE_POOL
from marketing_pipelines.defs.destinations import SyncConfig, push, sync_result
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.resources.iterable import (
    DRY_RUN_PLACEHOLDER_MESSAGE_TYPE_ID,
    MESSAGE_TYPE_ID_ENV,
    IterableResource,
)
from marketing_pipelines.sync.iterable import (
    SIGNUP_PROFILES,
    TRIAL_EVENTS,
    USERS,
    adopt_bare_event_keys,
    opt_outs,
    signup_opt_outs,
)

USER_AUDIENCE_KEY = dg.AssetKey(["audiences", "iterable_user_audience"])
UNSUBSCRIBES_KEY = dg.AssetKey(["staging", "stg_marketo__unsubscribes"])
MARKETING_CONTACTS_KEY = dg.AssetKey(["marts", "marketing_contacts"])


@dg.asset(
    name="iterable_user_sync",
    deps=[USER_AUDIENCE_KEY],
    group_name="iterable",
    freshness_policy=DAILY_FRESHNESS_POLICY,
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
    context: dg.AssetExecutionContext, config: SyncConfig, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    return sync_result(
        push(context, warehouse, USERS.batched(iterable.users_per_request), iterable, dry_run=config.dry_run)
    )


@dg.asset(
    name="iterable_unsubscribe_sync",
    deps=[UNSUBSCRIBES_KEY],
    group_name="iterable",
    freshness_policy=DAILY_FRESHNESS_POLICY,
    owners=[OWNER],
    kinds={"iterable"},
    pool=WAREHOUSE_POOL,
    description=(
        "Opts every Marketo unsubscribe (`staging.stg_marketo__unsubscribes`, once per event) out of the "
        "opt-in `GitLab Marketing` message type only, with `PUT /api/subscriptions/messageType/{id}?action="
        "unsubscribe` (never updateSubscriptions, which overwrites every other type). Live runs need "
        "ITERABLE_MARKETING_MESSAGE_TYPE_ID; without ITERABLE_API_KEY it writes `ops.outbox` instead."
    ),
)
def iterable_unsubscribe_sync(
    context: dg.AssetExecutionContext, config: SyncConfig, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    # fails before any request when live without a message type id
    message_type_id, configured = iterable.unsubscribe_message_type_id(dry_run=config.dry_run)
    destination = opt_outs(message_type_id)
    report = push(context, warehouse, destination, iterable, dry_run=config.dry_run)
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
    deps=[TRIAL_EVENTS_KEY, UNSUBSCRIBES_KEY, MARKETING_CONTACTS_KEY],
    group_name="iterable",
    freshness_policy=DAILY_FRESHNESS_POLICY,
    owners=[OWNER],
    kinds={"iterable"},
    pool=WAREHOUSE_POOL,
    description=(
        "Iterable handbook (SaaS Trials Event, SaaS Free Registration): updates the Iterable profile of every new "
        "`audiences.iterable_trial_events` row with its signup fields (company, companyNamespace, country, "
        "employeeBucket, firstName, lastName, latest_trial_start_date, signupReason, state, userRole) via "
        "`users/bulkUpdate`, once per event, before `iterable_trial_event_sync` tracks the event, so a Journey "
        "started by the event sees the fields. Consent: right after, every updated person who opted out (a Marketo "
        "unsubscribe in `staging.stg_marketo__unsubscribes`, also one that predates the signup, or any CRM contact "
        "with that e-mail opted out in `marts.marketing_contacts`) is opted out of the "
        "opt-in `GitLab Marketing` message type with the same subscription action as `iterable_unsubscribe_sync` "
        "(destination `iterable_signup_opt_outs`, once per event); their event is tracked only once that opt-out "
        "was accepted. Rows `free_registrations_only_for_company` reports are left out. Without ITERABLE_API_KEY "
        "it writes `ops.outbox` instead."
    ),
)
def iterable_signup_profile_sync(
    context: dg.AssetExecutionContext, config: SyncConfig, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    destination = SIGNUP_PROFILES.batched(iterable.users_per_request)
    adopt_bare_event_keys(warehouse.get_warehouse(), destination.audience, destination.name)
    profiles = push(context, warehouse, destination, iterable, dry_run=config.dry_run)
    opted_out = _push_signup_opt_outs(context, warehouse, iterable, dry_run=config.dry_run)
    return sync_result(profiles, opt_outs=dg.MetadataValue.json(opted_out))


def _push_signup_opt_outs(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, iterable: IterableResource, *, dry_run: bool
) -> dict[str, Any]:
    """Opt signed-up people who opted out out of `GitLab Marketing` (after their profile update).

    A live run without the message type id sends no opt-out and says so: the events of those people stay held
    (the event sync waits for an accepted opt-out), every other event goes out.
    """
    message_type_id = iterable.configured_message_type_id()
    if message_type_id is None and not (dry_run or iterable.is_dry_run):
        note = (
            f"no opt-out sent: set {MESSAGE_TYPE_ID_ENV} to the opt-in GitLab Marketing type's id; the signup events "
            "of people with a Marketo unsubscribe are held until their opt-out is accepted"
        )
        context.log.warning(note)
        return {"sent": 0, "note": note}
    destination = signup_opt_outs(DRY_RUN_PLACEHOLDER_MESSAGE_TYPE_ID if message_type_id is None else message_type_id)
    report = push(context, warehouse, destination, iterable, dry_run=dry_run)
    return {**report.as_metadata(), "endpoint": destination.endpoint}


@dg.asset(
    name="iterable_trial_event_sync",
    deps=[TRIAL_EVENTS_KEY, "iterable_signup_profile_sync"],
    group_name="iterable",
    freshness_policy=DAILY_FRESHNESS_POLICY,
    owners=[OWNER],
    kinds={"iterable"},
    pool=WAREHOUSE_POOL,
    description=(
        "Iterable handbook (SaaS Trials Event, SaaS Free Registration): sends every new "
        "`audiences.iterable_trial_events` row to Iterable with `events/trackBulk` (1,000 events and < 4 MB a "
        "request, 10 requests/s) as `saasTrial` / `saasFreeRegistration`, keyed by `event_key` (kind + id) with an "
        "event `id` derived from it, so a trial and a free registration sharing an id are two events and a retried "
        "or re-run event never shows twice. Leaves out the rows `free_registrations_only_for_company` reports, and "
        "holds an unsubscribed person's event until their opt-out was accepted. Without ITERABLE_API_KEY it writes "
        "`ops.outbox` instead."
    ),
)
def iterable_trial_event_sync(
    context: dg.AssetExecutionContext, config: SyncConfig, warehouse: WarehouseResource, iterable: IterableResource
) -> dg.MaterializeResult:
    adopt_bare_event_keys(warehouse.get_warehouse(), TRIAL_EVENTS.audience, TRIAL_EVENTS.name)
    return sync_result(push(context, warehouse, TRIAL_EVENTS, iterable, dry_run=config.dry_run))
