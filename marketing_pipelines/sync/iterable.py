"""Iterable as sync-engine destinations: audience rows → `users/bulkUpdate` user objects, Marketo unsubscribe
events → one-message-type opt-outs (`PUT /api/subscriptions/messageType/{id}?action=unsubscribe`), and trial /
free registration events → `events/trackBulk` events with deterministic ids."""

from __future__ import annotations

import json
import uuid
from functools import lru_cache
from importlib import resources
from typing import Any

from marketing_pipelines.clients._http import envelope_size
from marketing_pipelines.clients.iterable import (
    BULK_UPDATE_USERS,
    DEFAULT_EVENTS_PER_REQUEST,
    DEFAULT_SUBSCRIPTION_ACTION_USERS,
    DEFAULT_USERS_PER_REQUEST,
    MAX_BODY_BYTES,
    TRACK_BULK,
    IterableClient,
    subscription_action_path,
)
from marketing_pipelines.pii import EMAIL_PATTERN
from marketing_pipelines.sync.engine import Audience, BatchOutcome, ClientDestination
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


@lru_cache(maxsize=1)
def user_schema() -> dict[str, Any]:
    """JSON schema of one `bulkUpdate` user object, vendored from Iterable's API spec."""
    text = resources.files("marketing_pipelines.clients").joinpath("iterable_user_schema.json").read_text()
    return json.loads(text)


def user_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The `bulkUpdate` user object for an audience row (identified by e-mail, as the project is)."""
    email = row.get("email")
    if not isinstance(email, str) or not EMAIL_PATTERN.match(email):
        raise ValueError(f"not an e-mail address: {email!r}")
    data_fields = row.get("data_fields")
    try:
        fields = json.loads(data_fields) if isinstance(data_fields, str) else dict(data_fields or {})
    except (TypeError, ValueError) as error:
        raise ValueError(f"data_fields is not a JSON object: {error}") from None
    if row.get("user_id") is not None:
        fields["gitlabUserId"] = str(row["user_id"])
    return {"email": email, "dataFields": fields, "mergeNestedObjects": False}


class IterableUserDestination(ClientDestination[IterableClient]):
    """`POST /api/users/bulkUpdate`: 1,000 users and 4 MB a request, paced by the client (5 requests/s)."""

    name = "iterable_users"
    endpoint = BULK_UPDATE_USERS
    max_bytes = MAX_BODY_BYTES

    def __init__(self, client: IterableClient | None, *, max_records: int = DEFAULT_USERS_PER_REQUEST) -> None:
        self.client = client
        self.max_records = max_records

    def envelope_bytes(self) -> int:
        return envelope_size({}, "users")

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        return user_payload(row)

    def request_body(self, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        return {"users": payloads}

    def send(self, payloads: list[dict[str, Any]]) -> BatchOutcome:
        result = self.require_client().bulk_update_users(payloads)
        return BatchOutcome(rejected=dict(result.failed))


def unsubscribe_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The record for one unsubscribe event: its e-mail, plus the event id the outcome is mapped back by."""
    email = row.get("email")
    if not isinstance(email, str) or not EMAIL_PATTERN.match(email):
        raise ValueError(f"not an e-mail address: {email!r}")
    event_id = row.get("record_key", row.get("event_id"))  # `record_key` is the engine's key, cast to varchar
    if event_id is None:
        raise ValueError("no event_id")
    return {"email": email, "event_id": str(event_id)}


class IterableUnsubscribeDestination(ClientDestination[IterableClient]):
    """`PUT /api/subscriptions/messageType/{id}?action=unsubscribe`: opts each person out of ONE message type.

    Unlike `users/updateSubscriptions` / `bulkUpdateSubscriptions`, which overwrite a user's whole
    `unsubscribedMessageTypeIds` list (re-subscribing them to every other type), the bulk subscription action
    changes the configured (opt-in `GitLab Marketing`) type only. Records are keyed by unsubscribe event id, so each
    event is sent once; several events of one person in a request send that e-mail once and all end synced.
    Paced by the client's subscriptions limiter (5 requests/s by default).
    """

    name = "iterable_unsubscribes"
    max_bytes = MAX_BODY_BYTES

    def __init__(
        self,
        client: IterableClient | None,
        *,
        message_type_id: int,
        max_records: int = DEFAULT_SUBSCRIPTION_ACTION_USERS,
        name: str = "iterable_unsubscribes",
    ) -> None:
        self.client = client
        self.name = name  # the signup opt-outs reuse this destination under their own name (own sync state)
        self.message_type_id = int(message_type_id)
        self.max_records = max_records
        self.endpoint = subscription_action_path(MESSAGE_TYPE_GROUP, self.message_type_id)

    def envelope_bytes(self) -> int:
        return envelope_size({}, "users")

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        return unsubscribe_payload(row)

    @staticmethod
    def emails(payloads: list[dict[str, Any]]) -> list[str]:
        """The distinct e-mails of a request, in first-seen order."""
        return list(dict.fromkeys(payload["email"] for payload in payloads))

    def request_body(self, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        return {"users": self.emails(payloads)}

    def send(self, payloads: list[dict[str, Any]]) -> BatchOutcome:
        result = self.require_client().bulk_subscription_action(
            MESSAGE_TYPE_GROUP, self.message_type_id, "unsubscribe", self.emails(payloads)
        )
        rejected = {
            payload["event_id"]: result.failed[payload["email"]]
            for payload in payloads
            if payload["email"] in result.failed
        }
        return BatchOutcome(rejected=rejected)


class IterableSignupProfileDestination(ClientDestination[IterableClient]):
    """`POST /api/users/bulkUpdate` with the profile fields of each signup event, before the event itself is tracked.

    Records are keyed by event (one profile update per landed event, sent once); Iterable answers per e-mail, so
    a rejected e-mail rejects every event of that person in the request.
    """

    name = "iterable_signup_profiles"
    endpoint = BULK_UPDATE_USERS
    max_bytes = MAX_BODY_BYTES

    def __init__(self, client: IterableClient | None, *, max_records: int = DEFAULT_USERS_PER_REQUEST) -> None:
        self.client = client
        self.max_records = max_records

    def envelope_bytes(self) -> int:
        return envelope_size({}, "users")

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        event_key = row.get("record_key", row.get("event_key"))
        if event_key is None:
            raise ValueError("no event_key")
        return {"event_id": str(event_key), "user": user_payload(row)}

    def request_body(self, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        return {"users": [payload["user"] for payload in payloads]}

    def send(self, payloads: list[dict[str, Any]]) -> BatchOutcome:
        result = self.require_client().bulk_update_users([payload["user"] for payload in payloads])
        rejected = {
            payload["event_id"]: result.failed[payload["user"]["email"]]
            for payload in payloads
            if payload["user"]["email"] in result.failed
        }
        return BatchOutcome(rejected=rejected)


def iterable_event_id(event_key: str) -> str:
    """The Iterable event `id` of a landed event: a uuid5 of its `event_key` (`<kind>:<event_id>`), so a re-send
    updates, never duplicates, and a trial and a free registration sharing an `event_id` stay two events."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, str(event_key)))


def event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """The `trackBulk` event object (`TrackRequest`) for one row of `audiences.iterable_trial_events`."""
    email = row.get("email")
    if not isinstance(email, str) or not EMAIL_PATTERN.match(email):
        raise ValueError(f"not an e-mail address: {email!r}")
    event_key = row.get("record_key", row.get("event_key"))
    if event_key is None:
        raise ValueError("no event_key")
    event_name = row.get("event_name")
    if not isinstance(event_name, str) or not event_name:
        raise ValueError("no event_name")
    data_fields = row.get("data_fields")
    try:
        fields = json.loads(data_fields) if isinstance(data_fields, str) else dict(data_fields or {})
    except (TypeError, ValueError) as error:
        raise ValueError(f"data_fields is not a JSON object: {error}") from None
    try:
        created_at = int(row["created_at"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"created_at is not epoch seconds: {row.get('created_at')!r}") from None
    return {
        "email": email,
        "eventName": event_name,
        "id": iterable_event_id(str(event_key)),
        "createdAt": created_at,
        "dataFields": fields,
    }


class IterableTrackBulkDestination(ClientDestination[IterableClient]):
    """`POST /api/events/trackBulk`: 1,000 events and 4 MB a request, paced by the client (10 requests/s).

    Keyed by `event_key` (`<kind>:<event_id>`); the event `id` sent is derived from it, so a retried batch updates
    the same Iterable events. Rejections come back per user (or event name) and are mapped to the event keys.
    """

    name = "iterable_trial_events"
    endpoint = TRACK_BULK
    max_bytes = MAX_BODY_BYTES

    def __init__(self, client: IterableClient | None, *, max_records: int = DEFAULT_EVENTS_PER_REQUEST) -> None:
        self.client = client
        self.max_records = max_records
        self._record_keys: dict[str, str] = {}  # Iterable event id -> event_key (the engine's record key)

    def envelope_bytes(self) -> int:
        return envelope_size({}, "events")

    def to_payload(self, row: dict[str, Any]) -> dict[str, Any]:
        payload = event_payload(row)
        self._record_keys[payload["id"]] = str(row.get("record_key", row.get("event_key")))
        return payload

    def request_body(self, payloads: list[dict[str, Any]]) -> dict[str, Any]:
        return {"events": payloads}

    def send(self, payloads: list[dict[str, Any]]) -> BatchOutcome:
        result = self.require_client().track_bulk(payloads)
        # the client keys failures by the Iterable event id; the engine keys records by event_key
        rejected = {self._record_keys.get(event_id, event_id): reason for event_id, reason in result.failed.items()}
        for payload in payloads:
            self._record_keys.pop(payload["id"], None)
        return BatchOutcome(rejected=rejected)
