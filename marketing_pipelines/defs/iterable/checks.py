"""Checks that stop a bad push to Iterable (blocking, on the audience) and watch each sync's health."""

import datetime as dt
import json

import dagster as dg

from marketing_pipelines.defs.change_guard import change_guard_check
from marketing_pipelines.defs.constants import (
    FREE_REGISTRATION_EVENTS_KEY,
    FREE_REGISTRATIONS_ONLY_FOR_COMPANY,
    TRIAL_EVENTS_KEY,
    TRIAL_SIGNUP_EVENTS_KEY,
    WAREHOUSE_POOL,
)
from marketing_pipelines.defs.destinations import sync_health_check
from marketing_pipelines.defs.iterable.assets import USER_AUDIENCE_KEY
from marketing_pipelines.defs.rule_checks import ViolationTally, violations_result
from marketing_pipelines.pii import mask_email
from marketing_pipelines.resources import WarehouseResource
from marketing_pipelines.sync.engine import Audience
from marketing_pipelines.sync.iterable import (
    SIGNUP_PROFILES,
    TRIAL_EVENTS,
    TRIAL_EVENTS_VIEW,
    UNSUBSCRIBE_AUDIENCE,
    UNSUBSCRIBES,
    USER_AUDIENCE,
    USERS,
    user_payload,
    user_schema,
)

AUDIENCE_ONLY_OPTED_IN = "audience_only_opted_in"
AUDIENCE_WITHIN_TWO_MONTHS = "audience_within_two_months"
AUDIENCE_PAYLOAD_VALID = "audience_payload_valid"
ITERABLE_USER_CHANGE_GUARD = "iterable_user_change_guard"

MAX_USER_BYTES = 4 * 1024 * 1024 - len(b'{"users":[]}')


@dg.asset_check(
    asset=USER_AUDIENCE_KEY,
    name=AUDIENCE_ONLY_OPTED_IN,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description=(
        "Iterable handbook, subscription preferences and Marketo unsubscribe events: no unsubscribed or "
        "opted-out person is in the Iterable audience. Blocks the push."
    ),
)
def audience_only_opted_in(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select audience.person_id, audience.email, 'unsubscribed' as value
        from audiences.iterable_user_audience as audience
        inner join staging.stg_marketo__unsubscribes as unsubscribes on audience.email = unsubscribes.email
        union all
        select audience.person_id, audience.email, 'opted out in CRM' as value
        from audiences.iterable_user_audience as audience
        inner join marts.marketing_contacts as contacts on audience.email = contacts.email
        where not contacts.is_opted_in
        """,
        severity=dg.AssetCheckSeverity.ERROR,
        what="audience records belong to people who opted out",
    )


@dg.asset_check(
    asset=USER_AUDIENCE_KEY,
    name=AUDIENCE_WITHIN_TWO_MONTHS,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description=(
        "Iterable handbook, data sync: only users created within the last two months are synced. Blocks the push."
    ),
)
def audience_within_two_months(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    return violations_result(
        warehouse.get_warehouse(),
        """
        select person_id, email, cast(cast(user_created_at as date) as varchar) as value
        from audiences.iterable_user_audience
        where user_created_at is null or user_created_at < current_date - interval '2 months'
        """,
        severity=dg.AssetCheckSeverity.ERROR,
        what="audience users were created more than two months ago",
    )


@dg.asset_check(
    asset=USER_AUDIENCE_KEY,
    name=AUDIENCE_PAYLOAD_VALID,
    blocking=True,
    pool=WAREHOUSE_POOL,
    description=(
        "Iterable API, users/bulkUpdate: "
        "every audience row becomes a user object that validates against Iterable's API spec and "
        "fits in one 4 MB request. Blocks the push."
    ),
)
def audience_payload_valid(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    import jsonschema

    validator = jsonschema.Draft4Validator(user_schema())
    tally = ViolationTally()
    query = "select email, user_id, data_fields from audiences.iterable_user_audience"
    for frame in warehouse.get_warehouse().iter_batches(query):
        for row in frame.to_dict("records"):
            try:
                payload = user_payload(row)
                error = next(iter(validator.iter_errors(payload)), None)
                problem = error.message if error else None
                if problem is None and len(json.dumps(payload, separators=(",", ":"))) > MAX_USER_BYTES:
                    problem = "larger than one 4 MB request"
            except ValueError as invalid:
                problem = str(invalid)
            if problem:
                tally.add(problem[:120], {"email": mask_email(row.get("email")), "reason": problem[:200]})
    return tally.result(
        severity=dg.AssetCheckSeverity.ERROR,
        what="audience rows are not valid bulkUpdate users",
        passed_description="Every row is valid.",
    )


iterable_user_change_guard = change_guard_check(
    name=ITERABLE_USER_CHANGE_GUARD,
    asset=USER_AUDIENCE_KEY,
    destination=USERS,
    what="the Iterable users push (`iterable_user_sync`)",
)


#: The signup audiences are queries over this view; the sync health checks name a rejected event by its row here.
SIGNUP_EVENTS_BY_KEY = Audience(table=TRIAL_EVENTS_VIEW, key_column="event_key", columns=("event_key", "email"))

iterable_user_sync_health = sync_health_check(
    asset="iterable_user_sync",
    destination=USERS.name,
    audience=USER_AUDIENCE,
    what="Iterable (users/bulkUpdate)",
    record_columns=("audience.person_id", "rejections.record_key"),
    labels=("person_id", "email", "reason"),
)
iterable_unsubscribe_sync_health = sync_health_check(
    asset="iterable_unsubscribe_sync",
    destination=UNSUBSCRIBES,
    audience=UNSUBSCRIBE_AUDIENCE,
    what="Iterable (message type unsubscribes)",
    record_columns=("rejections.record_key", "audience.email"),
    labels=("event_id", "email", "reason"),
)
iterable_signup_profile_sync_health = sync_health_check(
    asset="iterable_signup_profile_sync",
    destination=SIGNUP_PROFILES.name,
    audience=SIGNUP_EVENTS_BY_KEY,
    what="Iterable (signup profile updates)",
    record_columns=("rejections.record_key", "audience.email"),
    labels=("event_id", "email", "reason"),
)
iterable_trial_event_sync_health = sync_health_check(
    asset="iterable_trial_event_sync",
    destination=TRIAL_EVENTS.name,
    audience=SIGNUP_EVENTS_BY_KEY,
    what="Iterable (trial and free registration events)",
    record_columns=("rejections.record_key", "audience.email"),
    labels=("event_id", "email", "reason"),
)


#: More than this share of the audience's free registrations being personal means the rule is broken as a whole
#: (not a few leaked rows): the check fails with ERROR and blocks the signup push.
PERSONAL_SHARE_BLOCKING = 0.5
#: The free registrations in scope: those loaded within this many hours (every signup run and the daily run see
#: the last day's registrations; older ones were judged by the runs of their day).
PERSONAL_SCOPE_HOURS = 24
LEAKED = "personal free registration in the audience: left out of the push"


def free_registrations_in_scope_sql(loaded_since: dt.datetime) -> str:
    """One row per free registration in scope (``event_key, person_id, email, value, is_personal``), read from
    `staging.stg_signups__free_registration_events`, not through the audience view's own filter: every one loaded
    since ``loaded_since`` (naive UTC), and any personal one the audience holds, whenever loaded. ``value`` says
    what happens to a personal one."""
    since = loaded_since.replace(microsecond=0).isoformat(sep=" ")
    return f"""
    select
        registrations.event_key,
        registrations.event_key as person_id,
        registrations.email,
        case
            when coalesce(registrations.is_company_namespace, false) then 'set up for a team or company'
            when audience.event_key is not null then '{LEAKED}'
            else 'personal free registration: left out by the audience, as the rule says'
        end as value,
        not coalesce(registrations.is_company_namespace, false) as is_personal
    from staging.stg_signups__free_registration_events as registrations
    left join (
        select distinct events.event_key from {TRIAL_EVENTS_VIEW} as events
        where events.event_kind = 'free_registrations'
    ) as audience on audience.event_key = registrations.event_key
    where registrations.loaded_at >= cast('{since}' as timestamp)
        or (audience.event_key is not null and not coalesce(registrations.is_company_namespace, false))
    """


@dg.asset_check(
    asset=TRIAL_EVENTS_KEY,
    name=FREE_REGISTRATIONS_ONLY_FOR_COMPANY,
    blocking=True,
    # the audience is a view over the raw event tables: check what the signup run just loaded
    additional_deps=[TRIAL_SIGNUP_EVENTS_KEY, FREE_REGISTRATION_EVENTS_KEY],
    pool=WAREHOUSE_POOL,
    description=(
        "Iterable handbook (SaaS Free Registration): a free registration is sent only when the user set the account "
        "up for a team or company, decided by the event's `companyNamespace`. Reads the free registrations loaded "
        f"in the last {PERSONAL_SCOPE_HOURS} hours from `staging.stg_signups__free_registration_events` (not "
        "through the audience view's filter). Personal ones the audience left out are the rule working: counted "
        "and named in `personal_left_out` / `personal_left_out_sample` (e-mails masked), and the check passes. "
        "A personal one found in `audiences.iterable_trial_events` fails it: WARN when a few leaked (the signup "
        "pushes leave those rows out, every other event goes out); ERROR, blocking the push, when more than 50% of "
        "the audience's free registrations are personal (the rule, or the field deciding it, is broken as a whole)."
    ),
)
def free_registrations_only_for_company(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Reads the free registrations from staging on purpose, independent of the audience view's own filter."""
    db = warehouse.get_warehouse()
    if not db.table_exists("audiences", "iterable_trial_events"):
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                "audiences.iterable_trial_events does not exist yet: run refresh_marketing_data_job once (`make run`) "
                "to build the signup views. The loaded events are kept in raw and sent by the next run."
            ),
        )
    since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=PERSONAL_SCOPE_HOURS)
    in_scope = free_registrations_in_scope_sql(since)
    leaked_sql = f"select person_id, email, value from ({in_scope}) as in_scope where value = '{LEAKED}'"
    ((considered, left_out, leaked),) = db.query(
        f"""select count(*),
            coalesce(sum(case when is_personal and value <> '{LEAKED}' then 1 else 0 end), 0),
            coalesce(sum(case when value = '{LEAKED}' then 1 else 0 end), 0)
        from ({in_scope}) as in_scope"""
    )
    ((in_audience,),) = db.query(f"select count(*) from {TRIAL_EVENTS_VIEW} where event_kind = 'free_registrations'")
    share = leaked / in_audience if in_audience else 0.0
    blocking = share > PERSONAL_SHARE_BLOCKING
    result = violations_result(
        db,
        leaked_sql,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        what=(
            f"personal free registrations (companyNamespace false) are in the audience: {share:.0%} of its "
            f"{in_audience} free registrations"
            + (", over the 50% limit: the signup push is blocked" if blocking else "; left out of the push")
        ),
        labels=("event_key", "email", "value"),
    )
    sample = db.query(
        f"select person_id, email from ({in_scope}) as in_scope where is_personal and value <> '{LEAKED}' "
        "order by person_id limit 20"
    )
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=result.severity,
        description=result.description,
        metadata={
            **result.metadata,
            "free_registrations_considered": dg.MetadataValue.int(int(considered)),
            "personal_left_out": dg.MetadataValue.int(int(left_out)),
            "personal_left_out_sample": dg.MetadataValue.json(
                [{"event_key": key, "email": mask_email(email)} for key, email in sample]
            ),
            "personal_share": dg.MetadataValue.float(round(share, 4)),
            "blocking_share": dg.MetadataValue.float(PERSONAL_SHARE_BLOCKING),
            "scope_hours": dg.MetadataValue.int(PERSONAL_SCOPE_HOURS),
        },
    )
