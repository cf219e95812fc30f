"""A typed client for the Iterable endpoints the reverse-ETL syncs use: bulk user updates, bulk events and the
bulk subscription action.

Request bodies follow Iterable's Swagger spec (`BulkUpdateUsersRequest`, `BulkTrackRequest`,
`BulkSubscriptionActionRequest`). Each endpoint has its own client-side sliding-window limiter at the documented
per-project rate. Each method returns the records Iterable reported failed, keyed as Iterable names them (an
e-mail, a userId, or for events also a disallowed event name); the sync's destination declarations map those names
back to records.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from marketing_pipelines.clients._http import DEFAULT_TIMEOUT, JsonApiClient, RateLimiter, RetryPolicy

logger = logging.getLogger(__name__)

US_BASE_URL = "https://api.iterable.com"
EU_BASE_URL = "https://api.eu.iterable.com"
MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_USERS_PER_REQUEST = 1000
DEFAULT_EVENTS_PER_REQUEST = 1000
MAX_EVENT_ID_BYTES = 512

BULK_UPDATE_USERS = "/api/users/bulkUpdate"
TRACK_BULK = "/api/events/trackBulk"
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
#: Lists a bulk subscription action reply may carry in `params` (its `IterableApiResponse` has no counts).
SUBSCRIPTION_ACTION_FAILURE_LISTS = (*FAILED_UPDATE_LISTS, "validEmailFailures", "validUserIdFailures")
#: Deprecated top-level lists still returned by bulkUpdate/trackBulk; used only when `failedUpdates` lacks a key.
DEPRECATED_FAILURE_LISTS = ("invalidEmails", "invalidUserIds")


@dataclass
class BulkResult:
    """Outcome of one bulk call.

    `failed` maps each failing e-mail or userId (for trackBulk also each disallowed event name) to the reason, i.e.
    the name of the response list it appeared in (e.g. "invalidEmails"). Counts are Iterable's own.
    """

    success_count: int = 0
    fail_count: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)


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

    Methods send exactly one request; the sync engine splits large inputs with `batches_by_size`.
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
            # Each request counts until a window after it surely arrived (its answer, or 20 ms after its start if
            # the answer is slower; a 429 widens that): Iterable sees no more than `rate` arrivals in a second with
            # the sync's two requests in flight, and a slow answer costs no pace.
            return RateLimiter(rate, clock=clock, sleep=sleep, until_answered=True)

        # The spec documents 5/s for bulkUpdate and 10/s for trackBulk; it gives no rate for the subscription
        # action, which gets `subscriptions_per_second`.
        self.limiters: dict[str, RateLimiter] = {
            BULK_UPDATE_USERS: limiter(bulk_update_per_second),
            TRACK_BULK: limiter(track_bulk_per_second),
            BULK_SUBSCRIPTION_ACTION: limiter(subscriptions_per_second),
        }

    def _post(self, endpoint: str, body: dict[str, Any] | bytes) -> dict[str, Any]:
        return self.post_json(endpoint, body, limiter=self.limiters[endpoint])

    # -- users -----------------------------------------------------------------------------------------------
    def bulk_update_users(self, users: list[dict[str, Any]], *, body: bytes | None = None) -> BulkResult:
        """POST /api/users/bulkUpdate `{"users": users}`; each user has `email` or `userId` and `dataFields`.

        `body`: that request body already encoded as compact JSON (the sync engine's), sent as it is.
        """
        response = self._post(BULK_UPDATE_USERS, {"users": users} if body is None else body)
        return _result(response, parse_user_failures(response))

    # -- events ----------------------------------------------------------------------------------------------
    def track_bulk(self, events: list[dict[str, Any]], *, body: bytes | None = None) -> BulkResult:
        """POST /api/events/trackBulk `{"events": events}` (`body`: that body already encoded, sent as it is).

        Iterable identifies failed events only by user (`failedUpdates` lists emails/userIds) or by
        `disallowedEventNames`: `failed` holds those names (a rejected user rejects each of their events).
        """
        for event in events:
            event_id = event.get("id")
            if event_id is not None and len(str(event_id).encode("utf-8")) > MAX_EVENT_ID_BYTES:
                raise ValueError(f"event id longer than {MAX_EVENT_ID_BYTES} bytes: {str(event_id)[:40]}...")
        response = self._post(TRACK_BULK, {"events": events} if body is None else body)
        failed = parse_user_failures(response)
        for name in response.get("disallowedEventNames") or []:
            failed.setdefault(str(name), "disallowedEventNames")
        return _result(response, failed)

    # -- subscriptions ---------------------------------------------------------------------------------------
    def bulk_subscription_action(
        self, subscription_group: str, group_id: int, action: str, emails: list[str]
    ) -> BulkResult:
        """PUT /api/subscriptions/{group}/{id}?action=subscribe|unsubscribe `{"users": emails}`.

        Unlike users/(bulk)updateSubscriptions, which overwrite a user's whole list, this changes ONE subscription
        group (e.g. one message type) for each user and leaves every other subscription as it is. The reply is an
        `IterableApiResponse` (`code`, `msg`, `params`) without counts: `success_count` is the number of distinct
        emails sent minus those reported as failed, and `failed` stays empty unless `params` (or a `failedUpdates`
        object) lists failing emails. Paced by the subscriptions limiter.
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


def subscription_action_path(subscription_group: str, group_id: int) -> str:
    """The concrete bulk subscription action path, e.g. `/api/subscriptions/messageType/123`."""
    return BULK_SUBSCRIPTION_ACTION.format(subscriptionGroup=subscription_group, subscriptionGroupId=int(group_id))
