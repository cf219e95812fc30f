"""A typed client for the Iterable endpoints the reverse-ETL syncs use (bulk users, bulk events, subscriptions, lists).

Request bodies follow Iterable's Swagger spec (`BulkUpdateUsersRequest`, `BulkTrackRequest`,
`UpdateSubscriptionsRequest`, `BulkUpdateSubscriptionsRequest`, `BulkSubscriptionActionRequest`,
`SubscribeRequest`, `UnsubscribeRequest`).
Each endpoint has its own client-side sliding-window limiter at the documented per-project rate.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from marketing_pipelines.clients._http import (
    DEFAULT_TIMEOUT,
    JsonApiClient,
    RateLimiter,
    RetryPolicy,
    batches_by_size,
    envelope_size,
)

logger = logging.getLogger(__name__)

US_BASE_URL = "https://api.iterable.com"
EU_BASE_URL = "https://api.eu.iterable.com"
MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_USERS_PER_REQUEST = 1000
DEFAULT_EVENTS_PER_REQUEST = 1000
MAX_EVENT_ID_BYTES = 512
#: Extra seconds added to each 1-second window, so latency jitter never lets the server see N+1 in a window.
PACING_SAFETY_MARGIN = 0.05

BULK_UPDATE_USERS = "/api/users/bulkUpdate"
TRACK_BULK = "/api/events/trackBulk"
UPDATE_SUBSCRIPTIONS = "/api/users/updateSubscriptions"
BULK_UPDATE_SUBSCRIPTIONS = "/api/users/bulkUpdateSubscriptions"
LIST_SUBSCRIBE = "/api/lists/subscribe"
LIST_UNSUBSCRIBE = "/api/lists/unsubscribe"
#: The spec's path template of the bulk subscription action (`PUT ...?action=subscribe|unsubscribe`).
BULK_SUBSCRIPTION_ACTION = "/api/subscriptions/{subscriptionGroup}/{subscriptionGroupId}"
SUBSCRIPTION_ACTIONS = frozenset({"subscribe", "unsubscribe"})
#: The spec: "Subscription group (i.e.: emailList, messageType, messageChannel) [Alphanumeric, case insensitive]".
SUBSCRIPTION_GROUP_PATTERN = re.compile(r"^[A-Za-z0-9]+$")
#: The spec states no per-request limit for the bulk subscription action; 1,000 like the other bulk endpoints.
DEFAULT_SUBSCRIPTION_ACTION_USERS = 1000

#: The lists of `FailedUserUpdates` / `FailedEventUpdates` in the spec (values are emails or userIds).
FAILED_UPDATE_LISTS = (
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
    "conflictEmails",
    "conflictUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
)
#: `BulkUpdateSubscriptionsResponse` has no `failedUpdates`; it reports failures in these top-level lists.
SUBSCRIPTION_FAILURE_LISTS = ("invalidEmails", "invalidUserIds", "validEmailFailures", "validUserIdFailures")
#: Lists a bulk subscription action reply may carry in `params` (its `IterableApiResponse` has no counts).
SUBSCRIPTION_ACTION_FAILURE_LISTS = (*FAILED_UPDATE_LISTS, "validEmailFailures", "validUserIdFailures")
#: Deprecated top-level lists still returned by bulkUpdate/trackBulk; used only when `failedUpdates` lacks a key.
DEPRECATED_FAILURE_LISTS = ("invalidEmails", "invalidUserIds")


@dataclass
class BulkResult:
    """Outcome of one (or several combined) bulk calls.

    `failed` maps the failing key as sent (email or userId; for trackBulk the event `id`) to the reason, i.e. the
    name of the response list it appeared in (e.g. "invalidEmails"). Counts are Iterable's own.
    """

    success_count: int = 0
    fail_count: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def combine(cls, results: Iterable[BulkResult]) -> BulkResult:
        """Sum several results; `raw` becomes `{"responses": [...]}`."""
        total = cls(raw={"responses": []})
        for result in results:
            total.success_count += result.success_count
            total.fail_count += result.fail_count
            total.failed.update(result.failed)
            total.raw["responses"].append(result.raw)
        return total


def _identity_failures(response: Mapping[str, Any], lists: Sequence[str], *, nested: bool) -> dict[str, str]:
    """Collect `{email_or_userId: list_name}` from `failedUpdates` (nested) or the top level."""
    failed: dict[str, str] = {}
    source = response.get("failedUpdates") if nested else response
    if isinstance(source, Mapping):
        names = list(lists) + [k for k in source if k not in lists] if nested else list(lists)
        for name in names:
            values = source.get(name)
            if isinstance(values, list):
                for value in values:
                    failed.setdefault(str(value), name)
    return failed


def parse_user_failures(response: Mapping[str, Any]) -> dict[str, str]:
    """Failures of a `UserBulkUpdateListResponse` / `BulkTrackResponse`: every `failedUpdates` list, then the
    deprecated top-level `invalidEmails`/`invalidUserIds` for anything not already reported."""
    failed = _identity_failures(response, FAILED_UPDATE_LISTS, nested=True)
    for key, reason in _identity_failures(response, DEPRECATED_FAILURE_LISTS, nested=False).items():
        failed.setdefault(key, reason)
    return failed


def _result(response: dict[str, Any], failed: dict[str, str]) -> BulkResult:
    return BulkResult(
        success_count=int(response.get("successCount") or 0),
        fail_count=int(response.get("failCount") or 0),
        failed=failed,
        raw=response,
    )


class IterableClient(JsonApiClient):
    """Iterable REST client: one method per endpoint, each paced, retried, and validated against the spec's shapes.

    Methods send exactly one request; use `batches_by_size` (or the `*_batched` helpers) to split large inputs.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = US_BASE_URL,
        *,
        http: httpx.Client | None = None,
        bulk_update_per_second: float = 5,
        track_bulk_per_second: float = 10,
        subscriptions_per_second: float = 5,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not api_key:
            raise ValueError("an Iterable API key is required")
        super().__init__(
            base_url,
            headers={"Api-Key": api_key},
            secrets=[api_key],
            http=http,
            retry=retry,
            timeout=timeout,
            sleep=sleep,
            log=logger,
        )

        def limiter(rate: float) -> RateLimiter:
            return RateLimiter(rate, clock=clock, sleep=sleep, safety_margin=PACING_SAFETY_MARGIN)

        # The spec documents 5/s for bulkUpdate and 10/s for trackBulk; it gives no rate for the subscription
        # and list endpoints, so they share `subscriptions_per_second` (each endpoint has its own window).
        self.limiters: dict[str, RateLimiter] = {
            BULK_UPDATE_USERS: limiter(bulk_update_per_second),
            TRACK_BULK: limiter(track_bulk_per_second),
            UPDATE_SUBSCRIPTIONS: limiter(subscriptions_per_second),
            BULK_UPDATE_SUBSCRIPTIONS: limiter(subscriptions_per_second),
            LIST_SUBSCRIBE: limiter(subscriptions_per_second),
            LIST_UNSUBSCRIBE: limiter(subscriptions_per_second),
            BULK_SUBSCRIPTION_ACTION: limiter(subscriptions_per_second),
        }

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.post_json(endpoint, body, limiter=self.limiters[endpoint])

    # -- users -----------------------------------------------------------------------------------------------
    def bulk_update_users(self, users: list[dict[str, Any]]) -> BulkResult:
        """POST /api/users/bulkUpdate `{"users": users}`; each user has `email` or `userId` and `dataFields`."""
        response = self._post(BULK_UPDATE_USERS, {"users": users})
        return _result(response, parse_user_failures(response))

    def bulk_update_users_batched(
        self,
        users: Iterable[dict[str, Any]],
        *,
        max_records: int = DEFAULT_USERS_PER_REQUEST,
        max_bytes: int = MAX_BODY_BYTES,
        on_oversized: Callable[[dict[str, Any], int], None] | None = None,
    ) -> BulkResult:
        """`bulk_update_users` over size-bounded batches, combined into one result."""
        batches = batches_by_size(
            users,
            max_records=max_records,
            max_bytes=max_bytes,
            envelope_bytes=envelope_size({}, "users"),
            on_oversized=on_oversized,
        )
        return BulkResult.combine(self.bulk_update_users(batch) for batch in batches)

    # -- events ----------------------------------------------------------------------------------------------
    def track_bulk(self, events: list[dict[str, Any]]) -> BulkResult:
        """POST /api/events/trackBulk `{"events": events}`.

        Iterable identifies failed events only by user (`failedUpdates` lists emails/userIds) or by
        `disallowedEventNames`. Each failure is mapped back to the `id` of every event in this request from that
        user (or with that name); events without an `id` are keyed by the email/userId itself.
        """
        for event in events:
            event_id = event.get("id")
            if event_id is not None and len(str(event_id).encode("utf-8")) > MAX_EVENT_ID_BYTES:
                raise ValueError(f"event id longer than {MAX_EVENT_ID_BYTES} bytes: {str(event_id)[:40]}...")
        response = self._post(TRACK_BULK, {"events": events})
        return _result(response, _event_failures(events, response))

    def track_bulk_batched(
        self,
        events: Iterable[dict[str, Any]],
        *,
        max_records: int = DEFAULT_EVENTS_PER_REQUEST,
        max_bytes: int = MAX_BODY_BYTES,
        on_oversized: Callable[[dict[str, Any], int], None] | None = None,
    ) -> BulkResult:
        """`track_bulk` over size-bounded batches, combined into one result."""
        batches = batches_by_size(
            events,
            max_records=max_records,
            max_bytes=max_bytes,
            envelope_bytes=envelope_size({}, "events"),
            on_oversized=on_oversized,
        )
        return BulkResult.combine(self.track_bulk(batch) for batch in batches)

    # -- subscriptions ---------------------------------------------------------------------------------------
    def bulk_update_subscriptions(self, updates: list[dict[str, Any]]) -> BulkResult:
        """POST /api/users/bulkUpdateSubscriptions `{"updateSubscriptionsRequests": updates}`.

        Each item is an `UpdateSubscriptionsRequest`, e.g. `{"email": e, "unsubscribedMessageTypeIds": [id]}`.
        Careful: Iterable OVERWRITES every non-null field sent, so that item replaces the user's whole
        `unsubscribedMessageTypeIds` list; send the complete desired list per user.
        """
        response = self._post(BULK_UPDATE_SUBSCRIPTIONS, {"updateSubscriptionsRequests": updates})
        return _result(response, _identity_failures(response, SUBSCRIPTION_FAILURE_LISTS, nested=False))

    def update_subscriptions(self, email: str, *, unsubscribed_message_type_ids: list[int]) -> dict[str, Any]:
        """POST /api/users/updateSubscriptions for one user; returns the `IterableApiResponse` (`code`, `msg`).

        Overwrites the user's `unsubscribedMessageTypeIds` with exactly `unsubscribed_message_type_ids`.
        """
        body = {"email": email, "unsubscribedMessageTypeIds": [int(i) for i in unsubscribed_message_type_ids]}
        return self._post(UPDATE_SUBSCRIPTIONS, body)

    def bulk_subscription_action(
        self, subscription_group: str, group_id: int, action: str, emails: list[str]
    ) -> BulkResult:
        """PUT /api/subscriptions/{group}/{id}?action=subscribe|unsubscribe `{"users": emails}`.

        Unlike (bulk)updateSubscriptions this changes ONE subscription group (e.g. one message type) for each
        user and leaves every other subscription as it is. The reply is an `IterableApiResponse` (`code`, `msg`,
        `params`) without counts: `success_count` is the number of distinct emails sent minus those reported as
        failed, and `failed` stays empty unless `params` (or a `failedUpdates` object) lists failing emails.
        Paced by the subscriptions limiter.
        """
        if action not in SUBSCRIPTION_ACTIONS:
            raise ValueError(f"action must be one of {sorted(SUBSCRIPTION_ACTIONS)}, not {action!r}")
        if not SUBSCRIPTION_GROUP_PATTERN.match(subscription_group or ""):
            raise ValueError(f"subscription group must be alphanumeric (e.g. 'messageType'): {subscription_group!r}")
        if isinstance(group_id, bool) or int(group_id) != group_id or group_id < 0:
            raise ValueError(f"subscription group id must be a non-negative integer: {group_id!r}")
        endpoint = subscription_action_path(subscription_group, int(group_id))
        response = self.request_json(
            "PUT",
            endpoint,
            {"users": list(emails)},
            params={"action": action},
            limiter=self.limiters[BULK_SUBSCRIPTION_ACTION],
        )
        failed = parse_user_failures(response)
        params = response.get("params")
        if isinstance(params, Mapping):
            for key, reason in _identity_failures(params, SUBSCRIPTION_ACTION_FAILURE_LISTS, nested=False).items():
                failed.setdefault(key, reason)
        distinct = len(set(emails))
        return BulkResult(
            success_count=max(distinct - len(failed), 0), fail_count=len(failed), failed=failed, raw=response
        )

    # -- lists -----------------------------------------------------------------------------------------------
    def subscribe_to_list(self, list_id: int, subscribers: list[dict[str, Any]]) -> BulkResult:
        """POST /api/lists/subscribe `{"listId", "subscribers"}`; subscribers are `{"email"|"userId", ...}`."""
        response = self._post(LIST_SUBSCRIBE, {"listId": int(list_id), "subscribers": subscribers})
        return _result(response, parse_user_failures(response))

    def unsubscribe_from_list(self, list_id: int, subscribers: list[dict[str, Any]]) -> BulkResult:
        """POST /api/lists/unsubscribe `{"listId", "subscribers"}`; subscribers are `{"email"}` or `{"userId"}`."""
        response = self._post(LIST_UNSUBSCRIBE, {"listId": int(list_id), "subscribers": subscribers})
        return _result(response, parse_user_failures(response))


def subscription_action_path(subscription_group: str, group_id: int) -> str:
    """The concrete bulk subscription action path, e.g. `/api/subscriptions/messageType/123`."""
    return BULK_SUBSCRIPTION_ACTION.format(subscriptionGroup=subscription_group, subscriptionGroupId=int(group_id))


def _event_failures(events: Sequence[Mapping[str, Any]], response: Mapping[str, Any]) -> dict[str, str]:
    """Map trackBulk failures (by email/userId, or by event name) onto the ids of the events sent."""
    by_email: dict[str, list[str]] = {}
    by_user_id: dict[str, list[str]] = {}
    by_name: dict[str, list[str]] = {}
    for event in events:
        event_id = event.get("id")
        if event_id is None:
            continue
        if event.get("email") is not None:
            by_email.setdefault(str(event["email"]), []).append(str(event_id))
        if event.get("userId") is not None:
            by_user_id.setdefault(str(event["userId"]), []).append(str(event_id))
        by_name.setdefault(str(event.get("eventName")), []).append(str(event_id))

    failed: dict[str, str] = {}
    for identity, reason in parse_user_failures(response).items():
        index = by_user_id if reason.endswith("UserIds") else by_email
        for event_id in index.get(identity, [identity]):
            failed.setdefault(event_id, reason)
    for name in response.get("disallowedEventNames") or []:
        for event_id in by_name.get(str(name), [str(name)]):
            failed.setdefault(event_id, "disallowedEventNames")
    return failed
