"""Iterable as sync-engine destinations, each a declaration: audience rows → `users/bulkUpdate` user objects,
Marketo unsubscribe events → one-message-type opt-outs (`PUT /api/subscriptions/messageType/{id}?action=
unsubscribe`), signup events → profile updates, and trial / free registration events → `events/trackBulk` events
with deterministic ids.

Only the user audience is mirrored (a user who leaves it is marked out of it). Signup events, their profile updates
and unsubscribes are event streams: an event never leaves, so they have no exits.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from marketing_pipelines.clients.iterable import (
    BULK_UPDATE_USERS,
    DEFAULT_EVENTS_PER_REQUEST,
    DEFAULT_SUBSCRIPTION_ACTION_USERS,
    DEFAULT_USERS_PER_REQUEST,
    TRACK_BULK,
    IterableClient,
    subscription_action_path,
)
from marketing_pipelines.sync.destination import Audience, Destination, Record, email_of, json_object, record_key
from marketing_pipelines.sync.ops_tables import SYNC_REJECTIONS, SYNC_STATE, ensure_ops_tables
from marketing_pipelines.warehouse import Warehouse

USER_AUDIENCE = Audience(
    table="audiences.iterable_user_audience",
    key_column="email",
    columns=("email", "user_id", "data_fields"),
)

UNSUBSCRIBE_AUDIENCE = Audience(
    table="staging.stg_marketo__unsubscribes",
    key_column="event_id",
    columns=("event_id", "email"),
)

SIGNUP_OPT_OUTS = "iterable_signup_opt_outs"
TRIAL_EVENTS_VIEW = "audiences.iterable_trial_events"
#: Rows of `audiences.iterable_trial_events` that are personal free registrations (the event's `companyNamespace`
#: is false): never sent. The view leaves them out, the signup pushes below exclude any that slip in row by row, and
#: `free_registrations_only_for_company` names every personal one it reads from staging.
PERSONAL_FREE_REGISTRATIONS_SQL = """
    select events.event_key, registrations.user_id as person_id, events.email, 'personal free registration' as value
    from audiences.iterable_trial_events as events
    inner join staging.stg_signups__free_registration_events as registrations
        on events.event_key = registrations.event_key
    where not coalesce(registrations.is_company_namespace, false)
"""
#: Signup events that may be sent: the audience without the rows the check reports.
_SIGNUP_EVENTS = f"""
    select events.* from audiences.iterable_trial_events as events
    where events.event_key not in (select personal.event_key from ({PERSONAL_FREE_REGISTRATIONS_SQL}) as personal)
"""
#: Signup events of people who opted out: a Marketo unsubscribe of their e-mail, or any CRM contact carrying it
#: opted out (consent first, as in the user audience; e-mails are trimmed and lower-cased on every side).
_UNSUBSCRIBED_SIGNUP_EVENTS = f"""
    select signup_events.event_key, signup_events.email from ({_SIGNUP_EVENTS}) as signup_events
    where exists (
        select 1 from staging.stg_marketo__unsubscribes as unsubscribes where unsubscribes.email = signup_events.email
    )
    or exists (
        select 1 from marts.marketing_contacts as contacts
        where contacts.email = signup_events.email and not contacts.is_opted_in
    )
"""

#: The opt-out that follows each signup profile update of a person who unsubscribed in Marketo (before or after
#: signing up): the profile update creates or touches the Iterable user, the opt-out makes sure they are not
#: reachable through the `GitLab Marketing` message type. Keyed by event, sent once per event.
SIGNUP_OPT_OUT_AUDIENCE = Audience(
    table=f"({_UNSUBSCRIBED_SIGNUP_EVENTS}) as signup_opt_outs",
    key_column="event_key",
    columns=("event_key", "email"),
)

#: The events to track: an event of an unsubscribed person waits until their opt-out was accepted.
TRIAL_EVENT_AUDIENCE = Audience(
    table=f"""(
        select signup_events.* from ({_SIGNUP_EVENTS}) as signup_events
        where signup_events.event_key not in (
               select opt_outs.event_key from ({_UNSUBSCRIBED_SIGNUP_EVENTS}) as opt_outs
           )
           or signup_events.event_key in (
               select record_key from ops.sync_state where destination = '{SIGNUP_OPT_OUTS}'
           )
    ) as trial_events""",
    key_column="event_key",
    columns=("event_key", "email", "event_name", "created_at", "data_fields"),
)

#: The profile update of each signup event: the same rows, keyed by event, hashed on what the profile gets.
SIGNUP_PROFILE_AUDIENCE = Audience(
    table=f"({_SIGNUP_EVENTS}) as signup_profiles",
    key_column="event_key",
    columns=("event_key", "email", "data_fields"),
)


def adopt_bare_event_keys(warehouse: Warehouse, audience: Audience, destination: str) -> None:
    """Re-key sync state written before events were keyed by kind (record key = bare `event_id`), so an upgrade
    does not send every synced event again under a new Iterable id (a second journey start).

    A bare key that names exactly one event of the audience becomes its `event_key`, and is marked synced with
    the row's current hash (it was delivered); an id shared by a trial and a free registration is left alone:
    both events are then sent once under their own ids. Open rejections are re-keyed the same way. Idempotent.
    """
    if not warehouse.table_exists(*TRIAL_EVENTS_VIEW.split(".")):
        return
    ensure_ops_tables(warehouse)
    bare = f"""
        select event_id, min(event_key) as event_key, min(payload_hash) as payload_hash
        from (select event_id, event_key, {audience.hash_sql()} as payload_hash from {TRIAL_EVENTS_VIEW}) as rows
        group by event_id
        having count(*) = 1
    """
    kinds = " and ".join(f"record_key not like '{kind}:%'" for kind in ("trial_signups", "free_registrations"))
    warehouse.execute(
        [
            f"""update {SYNC_STATE} set record_key = bare.event_key, payload_hash = bare.payload_hash
            from ({bare}) as bare
            where {SYNC_STATE}.destination = '{destination}' and {SYNC_STATE}.record_key = bare.event_id
            and {kinds.replace("record_key", f"{SYNC_STATE}.record_key")}""",
            f"""update {SYNC_REJECTIONS} set record_key = bare.event_key
            from ({bare}) as bare
            where {SYNC_REJECTIONS}.destination = '{destination}' and {SYNC_REJECTIONS}.record_key = bare.event_id
            and {kinds.replace("record_key", f"{SYNC_REJECTIONS}.record_key")}""",
        ]
    )


MESSAGE_TYPE_GROUP = "messageType"
#: Namespace of the Iterable event ids derived from landed `<kind>:<event_id>` keys (uuid5: same event, same id).
EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c1e-5b7a-4f64-9d0e-2a8c4b1e7f30")
UNSUBSCRIBES = "iterable_unsubscribes"


@lru_cache(maxsize=1)
def user_schema() -> dict[str, Any]:
    """JSON schema of one `bulkUpdate` user object, vendored from Iterable's API spec."""
    text = resources.files("marketing_pipelines.clients").joinpath("iterable_user_schema.json").read_text()
    return json.loads(text)


def user_payload(row: Mapping[str, Any]) -> Record:
    """The `bulkUpdate` user object for an audience row (identified by e-mail, as the project is)."""
    fields = json_object(row.get("data_fields"))
    if row.get("user_id") is not None:
        fields["gitlabUserId"] = str(row["user_id"])
    return {"email": email_of(row), "dataFields": fields, "mergeNestedObjects": False}


#: The `dataFields` that mirror the user audience: true while the user is in `audiences.iterable_user_audience`,
#: false (with the date they left) once they left it. Segments and journeys select on the flag; users are never
#: deleted.
IN_AUDIENCE_FIELD = "inMarketingNamespaceAudience"
LEFT_AUDIENCE_FIELD = "leftMarketingNamespaceAudienceAt"


def audience_user_payload(row: Mapping[str, Any]) -> Record:
    """The `bulkUpdate` user object of a user audience row, marked in the audience."""
    user = user_payload(row)
    user["dataFields"][IN_AUDIENCE_FIELD] = True
    return user


def user_exit(email: str, left_at: datetime) -> Record:
    """The `bulkUpdate` user object of a user who left the audience: only the flag and the date (YYYY-MM-DD, a
    format Iterable reads as a date) change; every other field stays as last sent."""
    fields = {IN_AUDIENCE_FIELD: False, LEFT_AUDIENCE_FIELD: left_at.strftime("%Y-%m-%d")}
    return {"email": email_of({"email": email}), "dataFields": fields, "mergeNestedObjects": False}


def iterable_event_id(event_key: str) -> str:
    """The Iterable event `id` of a landed event: a uuid5 of its `event_key` (`<kind>:<event_id>`), so a re-send
    updates, never duplicates, and a trial and a free registration sharing an `event_id` stay two events."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, str(event_key)))


def event_payload(row: Mapping[str, Any]) -> Record:
    """The `trackBulk` event object (`TrackRequest`) for one row of `audiences.iterable_trial_events`."""
    email, event_key, event_name = email_of(row), record_key(row, "event_key"), row.get("event_name")
    if not isinstance(event_name, str) or not event_name:
        raise ValueError("no event_name")
    fields = json_object(row.get("data_fields"))
    try:
        created_at = int(row["created_at"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"created_at is not epoch seconds: {row.get('created_at')!r}") from None
    return {
        "email": email,
        "eventName": event_name,
        "id": iterable_event_id(event_key),
        "createdAt": created_at,
        "dataFields": fields,
    }


def _emails(records: list[Record]) -> list[str]:
    """The distinct e-mails of a request, in first-seen order (several events of one person: one e-mail)."""
    return list(dict.fromkeys(record["email"] for record in records))


def _by_email(record: Record) -> tuple[str]:
    return (record["email"],)


def _email(record: Record) -> str:
    return str(record["email"])


#: `POST /api/users/bulkUpdate`: 1,000 users and 4 MB a request, paced by the client (5 requests/s). Mirrored: a
#: user who leaves the audience is marked out of it (`user_exit`), never deleted.
USERS = Destination[IterableClient](
    "iterable_users",
    USER_AUDIENCE,
    BULK_UPDATE_USERS,
    payload=audience_user_payload,
    body=lambda users: {"users": users},
    call=IterableClient.bulk_update_users,
    identities=_by_email,
    max_records=DEFAULT_USERS_PER_REQUEST,
    exit=user_exit,
    person=_email,
    item=lambda user: user,
    call_encoded=lambda client, users, body: client.bulk_update_users(users, body=body),
)

#: `POST /api/users/bulkUpdate` with the profile fields of each signup event, before the event itself is tracked.
#: Keyed by event (one profile update per landed event, sent once); Iterable answers per e-mail, so a rejected
#: e-mail rejects every event of that person in the request.
SIGNUP_PROFILES = Destination[IterableClient](
    "iterable_signup_profiles",
    SIGNUP_PROFILE_AUDIENCE,
    BULK_UPDATE_USERS,
    payload=lambda row: {"event_id": record_key(row, "event_key"), "user": user_payload(row)},
    body=lambda records: {"users": [record["user"] for record in records]},
    call=lambda client, records: client.bulk_update_users([record["user"] for record in records]),
    identities=lambda record: (record["user"]["email"],),
    max_records=DEFAULT_USERS_PER_REQUEST,
    person=lambda record: str(record["user"]["email"]),
    item=lambda record: record["user"],
    call_encoded=lambda client, records, body: client.bulk_update_users(
        [record["user"] for record in records], body=body
    ),
)

#: `POST /api/events/trackBulk`: 1,000 events and 4 MB a request, paced by the client (10 requests/s). Keyed by
#: `event_key` (`<kind>:<event_id>`), from which the event `id` is derived, so a retried batch updates the same
#: Iterable events. Iterable rejects events by user or by event name. Marketing: each event starts the journey of
#: its name (SaaS Trials, SaaS Free Registration), so it counts toward the communication limits.
TRIAL_EVENTS = Destination[IterableClient](
    "iterable_trial_events",
    TRIAL_EVENT_AUDIENCE,
    TRACK_BULK,
    payload=event_payload,
    body=lambda events: {"events": events},
    call=IterableClient.track_bulk,
    identities=lambda event: (event["email"], event["eventName"]),
    max_records=DEFAULT_EVENTS_PER_REQUEST,
    person=_email,
    journey=lambda event: str(event["eventName"]),
    item=lambda event: event,
    call_encoded=lambda client, events, body: client.track_bulk(events, body=body),
)


def opt_outs(
    message_type_id: int, *, name: str = UNSUBSCRIBES, audience: Audience = UNSUBSCRIBE_AUDIENCE
) -> Destination[IterableClient]:
    """`PUT /api/subscriptions/messageType/{id}?action=unsubscribe`: opts each person out of ONE message type.

    Unlike `users/updateSubscriptions` / `bulkUpdateSubscriptions`, which overwrite a user's whole
    `unsubscribedMessageTypeIds` list (re-subscribing them to every other type), the bulk subscription action
    changes the configured (opt-in `GitLab Marketing`) type only. Records are keyed by event, so each event is sent
    once; several events of one person in a request send that e-mail once and all end synced. Paced by the
    client's subscriptions limiter (5 requests/s by default). The signup opt-outs are this declaration under
    their own name and audience (own sync state).
    """
    message_type_id = int(message_type_id)
    return Destination[IterableClient](
        name,
        audience,
        subscription_action_path(MESSAGE_TYPE_GROUP, message_type_id),
        payload=lambda row: {"email": email_of(row), "event_id": record_key(row, "event_id")},
        body=lambda records: {"users": _emails(records)},
        call=lambda client, records: client.bulk_subscription_action(
            MESSAGE_TYPE_GROUP, message_type_id, "unsubscribe", _emails(records)
        ),
        identities=_by_email,
        max_records=DEFAULT_SUBSCRIPTION_ACTION_USERS,
        person=_email,
    )


def signup_opt_outs(message_type_id: int) -> Destination[IterableClient]:
    """The opt-out that follows the signup profile update of a person who opted out (see SIGNUP_OPT_OUT_AUDIENCE)."""
    return opt_outs(message_type_id, name=SIGNUP_OPT_OUTS, audience=SIGNUP_OPT_OUT_AUDIENCE)
