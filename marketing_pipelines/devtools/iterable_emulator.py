"""A loopback Iterable API emulator for tests and local runs: real HTTP, per-path rate limits, faults, partial failures.

    with IterableEmulator(api_key="test", invalid_emails={"bad@example.com"}) as emu:
        client = IterableClient("test", emu.base_url)
        ...
        assert emu.users["a@example.com"] == {...}

Standalone: `python -m marketing_pipelines.devtools.iterable_emulator --port 8765 --api-key test`.

Semantics follow Iterable's Swagger spec: bulkUpdate merges `dataFields` into the profile; trackBulk upserts
by event `id` (a repeated id updates, never duplicates; `event_receipts` counts deliveries); updateSubscriptions
and bulkUpdateSubscriptions OVERWRITE the fields they are given, as the spec documents, while the bulk
subscription action (`PUT /api/subscriptions/{group}/{id}?action=subscribe|unsubscribe`) changes that one group
only. Response bodies have the spec's shapes (`UserBulkUpdateListResponse`, `BulkTrackResponse`,
`BulkUpdateSubscriptionsResponse`, `IterableApiResponse`, ...).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

logger = logging.getLogger(__name__)

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
FAULTS = ("429", "500", "slow")
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


class _BadParams(Exception):
    pass


class IterableEmulator:
    """An in-process HTTP server on 127.0.0.1 that behaves like the Iterable endpoints the client uses.

    rate_limits: per-path max accepted requests in any sliding 1-second window (beyond: 429, plain text). A key
        ending in "/" is a path prefix: `/api/subscriptions/` limits every bulk subscription action together.
        Left as None: DEFAULT_RATE_LIMITS and DEFAULT_PREFIX_RATE_LIMITS; a path not in a given dict is unlimited.
    fault_rates: seeded random faults per request, e.g. {"429": 0.2, "500": 0.05, "slow": 0.02}; a "slow"
        request sleeps `slow_seconds` and is then still applied (like a real server the client timed out on).
    scripted_faults: faults consumed in order by the next requests (any path) before random ones; None = no fault.
    retry_after: when set, sent as the `Retry-After` header on 429 responses.
    invalid_emails / invalid_user_ids: identities rejected in `failedUpdates` while the rest of a batch succeeds.
    """

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
    ) -> None:
        unknown = set(fault_rates or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {FAULTS}")
        self.api_key = api_key
        self.host = host
        self.port = port
        self.rate_limits = dict(
            {**DEFAULT_RATE_LIMITS, **DEFAULT_PREFIX_RATE_LIMITS} if rate_limits is None else rate_limits
        )
        self.max_body_bytes = max_body_bytes
        self.fault_rates = dict(fault_rates or {})
        self.scripted_faults: deque[str | None] = deque(scripted_faults)
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.invalid_emails = set(invalid_emails)
        self.invalid_user_ids = set(invalid_user_ids)
        self.disallowed_event_names = set(disallowed_event_names)
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- state -----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything stored and counted (the server keeps running)."""
        with getattr(self, "_lock", threading.RLock()):
            self.users: dict[str, dict[str, Any]] = {}
            self.events: dict[str, dict[str, Any]] = {}
            self.event_receipts: Counter[str] = Counter()
            self.unsubscribed: dict[str, set[int]] = {}
            self.unsubscribed_channels: dict[str, set[int]] = {}
            self.subscription_action_receipts: Counter[tuple[str, str, int, str]] = Counter()
            self.subscriptions: dict[str, dict[str, Any]] = {}
            self.subscription_receipts: Counter[str] = Counter()
            self.lists: dict[int, set[str]] = defaultdict(set)
            self.requests_by_path: Counter[str] = Counter()
            self.request_times_by_path: dict[str, list[float]] = defaultdict(list)
            self.accepted_request_times_by_path: dict[str, list[float]] = defaultdict(list)
            self.status_counts: Counter[int] = Counter()
            self.fault_counts: Counter[str] = Counter()
            self.received_bodies: list[tuple[str, Any]] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> IterableEmulator:
        handler = type("Handler", (_Handler,), {"emulator": self})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="iterable-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> IterableEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request pipeline (called from handler threads) ------------------------------------------------------
    def rate_limit_key(self, path: str) -> str:
        """The window a request counts in: its own path, or the longest configured prefix (key ending in "/")."""
        if path in self.rate_limits:
            return path
        prefixes = [key for key in self.rate_limits if key.endswith("/") and path.startswith(key)]
        return max(prefixes, key=len) if prefixes else path

    def _admit(self, path: str, now: float) -> str | None:
        """Rate limit and fault roll for one authenticated request; returns a fault kind or None."""
        with self._lock:
            path = self.rate_limit_key(path)
            limit = self.rate_limits.get(path)
            if limit is not None:
                recent = [t for t in self.accepted_request_times_by_path[path] if now - t < 1.0]
                if len(recent) >= limit:
                    return "rate_limited"
            if self.scripted_faults:
                fault = self.scripted_faults.popleft()
            else:
                fault, roll, cumulative = None, self._rng.random(), 0.0
                for kind in FAULTS:
                    cumulative += self.fault_rates.get(kind, 0.0)
                    if roll < cumulative:
                        fault = kind
                        break
            if fault is not None:
                self.fault_counts[fault] += 1
            if fault in (None, "slow"):
                self.accepted_request_times_by_path[path].append(now)
            return fault

    def handle(self, path: str, body: Any) -> dict[str, Any]:
        """Apply an accepted request; returns the JSON response body. Raises _BadParams for a 400."""
        routes = {
            "/api/users/bulkUpdate": self._bulk_update,
            "/api/events/trackBulk": self._track_bulk,
            "/api/users/updateSubscriptions": self._update_subscriptions,
            "/api/users/bulkUpdateSubscriptions": self._bulk_update_subscriptions,
            "/api/lists/subscribe": self._list_subscribe,
            "/api/lists/unsubscribe": self._list_unsubscribe,
        }
        if not isinstance(body, dict):
            raise _BadParams("request body must be a JSON object")
        with self._lock:
            return routes[path](body)

    def handle_subscription_action(self, group: str, group_id: str, action: str | None, body: Any) -> dict[str, Any]:
        """Apply `PUT /api/subscriptions/<group>/<id>?action=...`: ONE group changes, nothing else.

        messageType: `unsubscribed[email]` gains (unsubscribe) or loses (subscribe) the id; messageChannel:
        `unsubscribed_channels` likewise; emailList: list membership. Invalid emails / userIds are skipped and listed
        in `params.invalidEmails` / `params.invalidUserIds`. Raises _BadParams for a 400.
        """
        canonical = SUBSCRIPTION_GROUPS.get(group.lower())
        if canonical is None:
            raise _BadParams(f"unknown subscription group {group!r}; use one of {sorted(SUBSCRIPTION_GROUPS.values())}")
        if not group_id.isdigit():
            raise _BadParams(f"subscriptionGroupId must be numeric, not {group_id!r}")
        if action not in ("subscribe", "unsubscribe"):
            raise _BadParams(f"action must be 'subscribe' or 'unsubscribe', not {action!r}")
        if not isinstance(body, dict):
            raise _BadParams("request body must be a JSON object")
        emails = body.get("users", [])
        user_ids = body.get("usersByUserId", [])
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise _BadParams("'users' must be a list of email strings")
        if not isinstance(user_ids, list) or not all(isinstance(u, str) for u in user_ids):
            raise _BadParams("'usersByUserId' must be a list of userId strings")
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

    @staticmethod
    def _items(body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        items = body.get(key)
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise _BadParams(f"'{key}' must be a list of objects")
        return items

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
            for name, value in fields.items():
                if user.get("mergeNestedObjects") and isinstance(value, dict) and isinstance(profile.get(name), dict):
                    profile[name] = {**profile[name], **value}
                else:
                    profile[name] = value
            ok += 1
        return self._bulk_response(ok, failures, USER_FAILURE_LISTS)

    def _track_bulk(self, body: dict[str, Any]) -> dict[str, Any]:
        ok, skipped, failures, disallowed = 0, 0, defaultdict(list), []
        for event in self._items(body, "events"):
            if not isinstance(event.get("eventName"), str):
                raise _BadParams("every event needs an eventName")
            if rejected := self._rejection(event):
                failures[rejected[0]].append(rejected[1])
                continue
            if event["eventName"] in self.disallowed_event_names:
                if event["eventName"] not in disallowed:
                    disallowed.append(event["eventName"])
                skipped += 1
                continue
            event_id = str(event.get("id") or uuid.uuid4().hex)
            if len(event_id.encode("utf-8")) > 512:
                raise _BadParams("event id longer than 512 bytes")
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
            raise _BadParams(f"{code}: {rejected[1]!r}")
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
            raise _BadParams("listId must be an integer")
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


class _Handler(BaseHTTPRequestHandler):
    emulator: IterableEmulator
    protocol_version = "HTTP/1.1"
    server_version = "IterableEmulator/1.0"
    disable_nagle_algorithm = True  # headers and body go out as separate writes; avoid 40 ms delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, payload: Any, *, text: bool = False, headers: Mapping[str, str] | None = None) -> None:
        data = payload.encode() if text else json.dumps(payload).encode()
        emu = self.emulator
        with emu._lock:
            emu.status_counts[status] += 1
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. a timeout on a slow fault)
            self.close_connection = True

    def do_GET(self) -> None:
        self._send(404, {"code": "NotFound", "msg": f"no route for GET {self.path}"})

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        emu = self.emulator
        now = time.monotonic()
        path, _, query = self.path.partition("?")
        with emu._lock:
            emu.requests_by_path[path] += 1
            emu.request_times_by_path[path].append(now)

        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""  # always drain, so the connection stays usable

        if self.headers.get("Api-Key") != emu.api_key:
            self._send(401, {"code": "BadApiKey", "msg": "Invalid API key"})
            return
        action_route = SUBSCRIPTION_ACTION_PATTERN.match(path) if method == "PUT" else None
        if (method == "POST" and path not in DEFAULT_RATE_LIMITS) or (method == "PUT" and action_route is None):
            self._send(404, {"code": "NotFound", "msg": f"no route for {method} {path}"})
            return
        if length > emu.max_body_bytes:
            self._send(413, {"code": "BatchTooLarge", "msg": f"request body over {emu.max_body_bytes} bytes"})
            return

        fault = emu._admit(path, now)
        if fault in ("rate_limited", "429"):
            headers = {"Retry-After": emu.retry_after} if emu.retry_after is not None else {}
            self._send(429, "Too Many Requests", text=True, headers=headers)
            return
        if fault == "500":
            self._send(500, {"code": "GenericError", "msg": "Internal server error (injected)"})
            return
        if fault == "slow":
            time.sleep(emu.slow_seconds)

        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, {"code": "BadJsonBody", "msg": "could not parse the request body as JSON"})
            return
        with emu._lock:
            emu.received_bodies.append((path, body))
        try:
            if action_route is not None:
                action = (parse_qs(query).get("action") or [None])[0]
                response = emu.handle_subscription_action(action_route["group"], action_route["id"], action, body)
            else:
                response = emu.handle(path, body)
        except _BadParams as exc:
            self._send(400, {"code": "BadParams", "msg": str(exc)})
            return
        self._send(200, response)


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    emulator = IterableEmulator(
        api_key=args.api_key,
        port=args.port,
        seed=args.seed,
        fault_rates={"429": args.fault_429, "500": args.fault_500, "slow": args.fault_slow},
        slow_seconds=args.slow_seconds,
        invalid_emails=args.invalid_email,
    )
    with emulator:
        print(f"Iterable emulator listening on {emulator.base_url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(5)
                logger.info("requests: %s statuses: %s", dict(emulator.requests_by_path), dict(emulator.status_counts))
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
