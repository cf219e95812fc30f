"""A loopback Iterable API emulator for tests and local runs: real HTTP, per-path rate limits, faults, partial failures.

    with IterableEmulator(api_key="test", invalid_emails={"bad@example.com"}) as emu:
        client = IterableClient("test", emu.base_url)
        ...
        assert emu.users["a@example.com"] == {...}

Standalone: `python -m devtools.iterable_emulator --port 8765 --api-key test`.

Semantics follow Iterable's Swagger spec: bulkUpdate merges `dataFields` into the profile; trackBulk upserts
by event `id` (a repeated id updates, never duplicates; `event_receipts` counts deliveries); updateSubscriptions
and bulkUpdateSubscriptions OVERWRITE the fields they are given, as the spec documents, while the bulk
subscription action (`PUT /api/subscriptions/{group}/{id}?action=subscribe|unsubscribe`) changes that one group
only. Response bodies have the spec's shapes (`UserBulkUpdateListResponse`, `BulkTrackResponse`,
`BulkUpdateSubscriptionsResponse`, `IterableApiResponse`, ...).

Like the API validating a body, a request is refused WHOLE (HTTP 400, `IterableApiResponse` error body, nothing
applied) when one of its records is bad: an e-mail listed in `poison_emails` (`BadParams`), or a user `dataFields`
value whose JSON type differs from the project's field type in `field_types` (`RequestFieldsTypesMismatched`; the
spec: an existing field's data type cannot change). A body over `max_body_bytes` (4 MB, the documented limit) is
refused with HTTP 413 `BatchTooLarge`.
"""

from __future__ import annotations

import argparse
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any
from urllib.parse import parse_qs

from devtools.loopback import BadRequest, LoopbackEmulator, Route, serve_until_interrupted

DEFAULT_RATE_LIMITS: dict[str, float] = {
    "/api/users/bulkUpdate": 5,
    "/api/events/trackBulk": 10,
    "/api/users/bulkUpdateSubscriptions": 5,
    "/api/users/updateSubscriptions": 5,
    "/api/lists/subscribe": 5,
    "/api/lists/unsubscribe": 5,
}
#: Rate limits of PUT paths, by path prefix (`/api/subscriptions/<group>/<id>` share one window).
SUBSCRIPTION_ACTION_PREFIX = "/api/subscriptions/"
DEFAULT_PREFIX_RATE_LIMITS: dict[str, float] = {SUBSCRIPTION_ACTION_PREFIX: 5}
SUBSCRIPTION_ACTION_PATTERN = re.compile(r"^/api/subscriptions/(?P<group>[^/]+)/(?P<id>[^/]+)$")
SUBSCRIPTION_GROUPS = {"emaillist": "emailList", "messagetype": "messageType", "messagechannel": "messageChannel"}
MAX_BODY_BYTES = 4 * 1024 * 1024
#: JSON type names of `field_types` (Iterable's long/double are both "number" here).
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}
USER_FAILURE_LISTS = (
    "conflictEmails",
    "conflictUserIds",
    "forgottenEmails",
    "forgottenUserIds",
    "invalidDataEmails",
    "invalidDataUserIds",
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
)
EVENT_FAILURE_LISTS = (
    "forgottenEmails",
    "forgottenUserIds",
    "invalidEmails",
    "invalidUserIds",
    "notFoundEmails",
    "notFoundUserIds",
)


class IterableEmulator(LoopbackEmulator):
    """An in-process HTTP server on 127.0.0.1 that behaves like the Iterable endpoints the client uses.

    rate_limits: per-path max accepted requests in any sliding 1-second window (beyond: 429, plain text). A key
        ending in "/" is a path prefix: `/api/subscriptions/` limits every bulk subscription action together.
        Left as None: DEFAULT_RATE_LIMITS and DEFAULT_PREFIX_RATE_LIMITS; a path not in a given dict is unlimited.
    fault_rates, scripted_faults, slow_seconds, retry_after, seed: see `LoopbackEmulator`.
    invalid_emails / invalid_user_ids: identities rejected in `failedUpdates` while the rest of a batch succeeds.
    poison_emails: identities whose presence makes the whole request fail with HTTP 400 (nothing applied).
    field_types: the project's user fields and their JSON types (string, number, boolean, object, array); a
        `dataFields` value of another type (null aside) makes the whole request fail with HTTP 400.
    """

    key_header = "Api-Key"
    server_name = "IterableEmulator"

    def __init__(
        self,
        *,
        api_key: str = "test",
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: Mapping[str, float] | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        fault_rates: Mapping[str, float] | None = None,
        scripted_faults: Iterable[str | None] = (),
        slow_seconds: float = 2.0,
        retry_after: str | None = None,
        seed: int = 0,
        invalid_emails: Iterable[str] = (),
        invalid_user_ids: Iterable[str] = (),
        disallowed_event_names: Iterable[str] = (),
        poison_emails: Iterable[str] = (),
        field_types: Mapping[str, str] | None = None,
    ) -> None:
        unknown = set((field_types or {}).values()) - set(JSON_TYPES)
        if unknown:
            raise ValueError(f"unknown field types {sorted(unknown)}; use {sorted(JSON_TYPES)}")
        self.poison_emails = set(poison_emails)
        self.field_types = dict(field_types or {})
        self.invalid_emails = set(invalid_emails)
        self.invalid_user_ids = set(invalid_user_ids)
        self.disallowed_event_names = set(disallowed_event_names)
        super().__init__(
            api_key=api_key,
            host=host,
            port=port,
            rate_limits={**DEFAULT_RATE_LIMITS, **DEFAULT_PREFIX_RATE_LIMITS} if rate_limits is None else rate_limits,
            max_body_bytes=max_body_bytes,
            fault_rates=fault_rates,
            scripted_faults=scripted_faults,
            slow_seconds=slow_seconds,
            retry_after=retry_after,
            seed=seed,
        )

    def reset_state(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.user_receipts: Counter[str] = Counter()
        self.events: dict[str, dict[str, Any]] = {}
        self.event_receipts: Counter[str] = Counter()
        self.unsubscribed: dict[str, set[int]] = {}
        self.unsubscribed_channels: dict[str, set[int]] = {}
        self.subscription_action_receipts: Counter[tuple[str, str, int, str]] = Counter()
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.subscription_receipts: Counter[str] = Counter()
        self.lists: dict[int, set[str]] = defaultdict(set)

    def route(self, method: str, path: str, query: str) -> Route | None:
        routes = {
            "/api/users/bulkUpdate": self._bulk_update,
            "/api/events/trackBulk": self._track_bulk,
            "/api/users/updateSubscriptions": self._update_subscriptions,
            "/api/users/bulkUpdateSubscriptions": self._bulk_update_subscriptions,
            "/api/lists/subscribe": self._list_subscribe,
            "/api/lists/unsubscribe": self._list_unsubscribe,
        }
        if method == "POST" and path in routes:
            return partial(self.handle, routes[path])
        action_route = SUBSCRIPTION_ACTION_PATTERN.match(path) if method == "PUT" else None
        if action_route is None:
            return None
        action = (parse_qs(query).get("action") or [None])[0]
        return partial(self.handle_subscription_action, action_route["group"], action_route["id"], action)

    def handle(self, apply: Route, body: Any) -> dict[str, Any]:
        """Apply an accepted POST body; raises BadRequest for a 400."""
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        with self._lock:
            return apply(body)

    def handle_subscription_action(self, group: str, group_id: str, action: str | None, body: Any) -> dict[str, Any]:
        """Apply `PUT /api/subscriptions/<group>/<id>?action=...`: ONE group changes, nothing else.

        messageType: `unsubscribed[email]` gains (unsubscribe) or loses (subscribe) the id; messageChannel:
        `unsubscribed_channels` likewise; emailList: list membership. Invalid emails / userIds are skipped and listed
        in `params.invalidEmails` / `params.invalidUserIds`. Raises BadRequest for a 400.
        """
        canonical = SUBSCRIPTION_GROUPS.get(group.lower())
        if canonical is None:
            raise BadRequest(f"unknown subscription group {group!r}; use one of {sorted(SUBSCRIPTION_GROUPS.values())}")
        if not group_id.isdigit():
            raise BadRequest(f"subscriptionGroupId must be numeric, not {group_id!r}")
        if action not in ("subscribe", "unsubscribe"):
            raise BadRequest(f"action must be 'subscribe' or 'unsubscribe', not {action!r}")
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        emails = body.get("users", [])
        user_ids = body.get("usersByUserId", [])
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise BadRequest("'users' must be a list of email strings")
        if not isinstance(user_ids, list) or not all(isinstance(u, str) for u in user_ids):
            raise BadRequest("'usersByUserId' must be a list of userId strings")
        self._refuse_poison([{"email": email} for email in emails], "users")
        ident = int(group_id)
        invalid: list[str] = []
        invalid_ids: list[str] = []
        with self._lock:
            identities = [(email, True) for email in emails] + [(user_id, False) for user_id in user_ids]
            for key, is_email in identities:
                if is_email and ("@" not in key or key in self.invalid_emails):
                    invalid.append(key)
                    continue
                if not is_email and (not key.strip() or key in self.invalid_user_ids):
                    invalid_ids.append(key)
                    continue
                if canonical == "messageType":
                    target = self.unsubscribed
                elif canonical == "messageChannel":
                    target = self.unsubscribed_channels
                else:
                    target = None
                if target is not None:
                    ids = target.setdefault(key, set())
                    if action == "unsubscribe":
                        ids.add(ident)
                    else:
                        ids.discard(ident)
                elif action == "subscribe":
                    self.lists[ident].add(key)
                else:
                    self.lists[ident].discard(key)
                self.subscription_action_receipts[(key, canonical, ident, action)] += 1
        params: dict[str, Any] = {}
        if invalid:
            params["invalidEmails"] = invalid
        if invalid_ids:
            params["invalidUserIds"] = invalid_ids
        return {"msg": f"{action} on {canonical} {ident} accepted", "code": "Success", "params": params}

    def _items(self, body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        """The records of a bulk body, validated as a whole: one bad record refuses the request (BadRequest)."""
        items = body.get(key)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise BadRequest(f"'{key}' must be a list of objects")
        self._refuse_poison(items, key)
        return items

    def _refuse_poison(self, items: list[dict[str, Any]], key: str) -> None:
        """Raise BadRequest for the first record that fails the whole request (see the module docstring)."""
        for index, item in enumerate(items):
            if item.get("email") in self.poison_emails:
                raise BadRequest(f"Invalid request body: {key}[{index}] {item['email']} failed validation")
            fields = item.get("dataFields") if key == "users" else None
            for name, value in (fields or {}).items() if isinstance(fields, dict) else ():
                expected = self.field_types.get(name)
                if expected is None or value is None:
                    continue
                if isinstance(value, bool) != (expected == "boolean") or not isinstance(value, JSON_TYPES[expected]):
                    raise BadRequest(
                        f"{key}[{index}].dataFields.{name} is {type(value).__name__}, the project field is {expected}",
                        code="RequestFieldsTypesMismatched",
                    )

    def _rejection(self, item: Mapping[str, Any]) -> tuple[str, str] | None:
        """(failure list, key) when this user/event identity is rejected, else None."""
        email, user_id = item.get("email"), item.get("userId")
        if email is not None:
            if not isinstance(email, str) or "@" not in email or email in self.invalid_emails:
                return "invalidEmails", str(email)
            return None
        if user_id is not None:
            if not isinstance(user_id, str) or not user_id.strip() or user_id in self.invalid_user_ids:
                return "invalidUserIds", str(user_id)
            return None
        return "invalidEmails", ""

    @staticmethod
    def _key(item: Mapping[str, Any]) -> str:
        return str(item["email"] if item.get("email") is not None else item["userId"])

    @staticmethod
    def _bulk_response(ok: int, failures: Mapping[str, list[str]], lists: Iterable[str]) -> dict[str, Any]:
        failed = {name: list(failures.get(name, [])) for name in lists}
        return {
            "successCount": ok,
            "failCount": sum(len(v) for v in failed.values()),
            "failedUpdates": failed,
            "invalidEmails": failed.get("invalidEmails", []),
            "invalidUserIds": failed.get("invalidUserIds", []),
            "createdFields": [],
            "filteredOutFields": [],
        }

    def _bulk_update(self, body: dict[str, Any]) -> dict[str, Any]:
        ok, failures = 0, defaultdict(list)
        for user in self._items(body, "users"):
            if rejected := self._rejection(user):
                failures[rejected[0]].append(rejected[1])
                continue
            fields = user.get("dataFields") or {}
            profile = self.users.setdefault(self._key(user), {})
            self.user_receipts[self._key(user)] += 1
            for name, value in fields.items():
                if user.get("mergeNestedObjects") and isinstance(value, dict) and isinstance(profile.get(name), dict):
                    profile[name] = {**profile[name], **value}
                else:
                    profile[name] = value
            ok += 1
        return self._bulk_response(ok, failures, USER_FAILURE_LISTS)

    def _track_bulk(self, body: dict[str, Any]) -> dict[str, Any]:
        ok, skipped, failures, disallowed = 0, 0, defaultdict(list), []
        events = self._items(body, "events")
        for event in events:  # a malformed event refuses the whole request before anything is applied
            if not isinstance(event.get("eventName"), str):
                raise BadRequest("every event needs an eventName")
            if len(str(event.get("id") or "").encode("utf-8")) > 512:
                raise BadRequest("event id longer than 512 bytes")
        for event in events:
            if rejected := self._rejection(event):
                failures[rejected[0]].append(rejected[1])
                continue
            if event["eventName"] in self.disallowed_event_names:
                if event["eventName"] not in disallowed:
                    disallowed.append(event["eventName"])
                skipped += 1
                continue
            event_id = str(event.get("id") or uuid.uuid4().hex)
            self.events[event_id] = dict(event)
            self.event_receipts[event_id] += 1
            ok += 1
        response = self._bulk_response(ok, failures, EVENT_FAILURE_LISTS)
        response["failCount"] += skipped
        response["disallowedEventNames"] = disallowed
        return response

    def _apply_subscriptions(self, request: Mapping[str, Any]) -> None:
        key = self._key(request)
        stored = self.subscriptions.setdefault(key, {})
        for name in (
            "emailListIds",
            "unsubscribedChannelIds",
            "unsubscribedMessageTypeIds",
            "subscribedMessageTypeIds",
        ):
            if request.get(name) is not None:  # the spec: non-null fields overwrite, they do not merge
                stored[name] = [int(i) for i in request[name]]
        if request.get("unsubscribedMessageTypeIds") is not None:
            self.unsubscribed[key] = set(stored["unsubscribedMessageTypeIds"])
        self.subscription_receipts[key] += 1

    def _update_subscriptions(self, body: dict[str, Any]) -> dict[str, Any]:
        if rejected := self._rejection(body):
            code = "InvalidEmailAddressError" if rejected[0] == "invalidEmails" else "InvalidUserIdError"
            raise BadRequest(f"{code}: {rejected[1]!r}")
        self._apply_subscriptions(body)
        return {"code": "Success", "msg": "Subscriptions updated"}

    def _bulk_update_subscriptions(self, body: dict[str, Any]) -> dict[str, Any]:
        ok, failures = 0, defaultdict(list)
        for request in self._items(body, "updateSubscriptionsRequests"):
            if rejected := self._rejection(request):
                failures[rejected[0]].append(rejected[1])
                continue
            self._apply_subscriptions(request)
            ok += 1
        lists = ("invalidEmails", "invalidUserIds", "validEmailFailures", "validUserIdFailures")
        response: dict[str, Any] = {name: failures.get(name, []) for name in lists}
        return {"successCount": ok, "failCount": sum(len(v) for v in response.values()), **response}

    def _list_change(self, body: dict[str, Any], *, subscribe: bool) -> dict[str, Any]:
        list_id = body.get("listId")
        if not isinstance(list_id, int):
            raise BadRequest("listId must be an integer")
        ok, failures = 0, defaultdict(list)
        members = self.lists[list_id]
        for subscriber in self._items(body, "subscribers"):
            if rejected := self._rejection(subscriber):
                failures[rejected[0]].append(rejected[1])
                continue
            key = self._key(subscriber)
            if subscribe:
                members.add(key)
            elif key in members:
                members.discard(key)
            else:
                failures["notFoundEmails" if subscriber.get("email") is not None else "notFoundUserIds"].append(key)
                continue
            ok += 1
        return self._bulk_response(ok, failures, USER_FAILURE_LISTS)

    def _list_subscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._list_change(body, subscribe=True)

    def _list_unsubscribe(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._list_change(body, subscribe=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the loopback Iterable API emulator.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-key", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fault-429", type=float, default=0.0, help="probability of an injected 429")
    parser.add_argument("--fault-500", type=float, default=0.0, help="probability of an injected 500")
    parser.add_argument("--fault-slow", type=float, default=0.0, help="probability of a slow response")
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--invalid-email", action="append", default=[], help="an email to reject (repeatable)")
    parser.add_argument(
        "--poison-email", action="append", default=[], help="an email that fails its whole request (repeatable)"
    )
    args = parser.parse_args(argv)
    emulator = IterableEmulator(
        api_key=args.api_key,
        port=args.port,
        seed=args.seed,
        fault_rates={"429": args.fault_429, "500": args.fault_500, "slow": args.fault_slow},
        slow_seconds=args.slow_seconds,
        invalid_emails=args.invalid_email,
        poison_emails=args.poison_email,
    )
    serve_until_interrupted(emulator, "Iterable")


if __name__ == "__main__":
    main()
