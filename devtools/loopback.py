"""The machinery every loopback API emulator shares: a real HTTP server on 127.0.0.1, key check, per-path
sliding-window rate limits with plain-text 429s, seeded and scripted faults, body limits and request counters.

A subclass names its key header and error-body shape and routes requests (`route`); see `iterable_emulator.py`
and `gainsight_emulator.py`.
"""

from __future__ import annotations

import gc
import json
import logging
import random
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import orjson

logger = logging.getLogger(__name__)

FAULTS = ("429", "500", "slow")

Route = Callable[[Any], dict[str, Any]]
"""Applies an accepted request body and returns the JSON response body; raises BadRequest for a 400."""


class BadRequest(Exception):
    """The request is malformed: answered with HTTP 400 and the emulator's error body (`code`, the message)."""

    def __init__(self, message: str, code: str = "BadParams") -> None:
        super().__init__(message)
        self.code = code


class LoopbackEmulator:
    """An in-process HTTP server on 127.0.0.1 that subclasses teach one API's routes.

    rate_limits: per-path max accepted requests in any sliding `rate_window_seconds` window (beyond: 429, plain
        text). A key ending in "/" is a path prefix; "*" counts every path in one window (a per-tenant limit).
    fault_rates: seeded random faults per request, e.g. {"429": 0.2, "500": 0.05, "slow": 0.02}; a "slow"
        request sleeps `slow_seconds` and is then still applied (like a real server the client timed out on).
    scripted_faults: faults consumed in order by the next requests (any path) before random ones; None = no fault.
    retry_after: when set, sent as the `Retry-After` header on 429 responses.
    """

    key_header = "Api-Key"
    server_name = "LoopbackEmulator"
    #: How JSON numbers with a fraction are parsed (`Decimal` keeps exactly the digits the client sent).
    parse_float: Any = float
    #: Move what is stored out of the garbage collector's reach after every applied request (`gc.freeze`). A
    #: process holding millions of received records otherwise stalls for whole seconds in full collections, and
    #: a request arriving meanwhile is stamped late for its rate window: 429s a real API would not send. The
    #: standalone emulator (`serve_until_interrupted`) turns it on; an emulator inside a test process leaves the
    #: test's own objects to the collector.
    freeze_stored: bool = False

    def __init__(
        self,
        *,
        api_key: str = "test",
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limits: Mapping[str, float],
        rate_window_seconds: float = 1.0,
        max_body_bytes: int,
        fault_rates: Mapping[str, float] | None = None,
        scripted_faults: Iterable[str | None] = (),
        slow_seconds: float = 2.0,
        retry_after: str | None = None,
        seed: int = 0,
    ) -> None:
        unknown = set(fault_rates or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {FAULTS}")
        self.api_key = api_key
        self.host = host
        self.port = port
        self.rate_limits = dict(rate_limits)
        self.rate_window_seconds = rate_window_seconds
        self.max_body_bytes = max_body_bytes
        self.fault_rates = dict(fault_rates or {})
        self.scripted_faults: deque[str | None] = deque(scripted_faults)
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- what a subclass provides ----------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forget the API's stored objects (called under the lock by `reset`)."""

    def route(self, method: str, path: str, query: str) -> Route | None:
        """The handler of a request, or None for a 404."""
        return None

    def error_body(self, status: int, code: str, message: str) -> dict[str, Any]:
        """The JSON error body for `status` (`code` is a short name such as BadApiKey or NotFound)."""
        return {"code": code, "msg": message}

    # -- state -----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything stored and counted (the server keeps running)."""
        with self._lock:
            self.requests_by_path: Counter[str] = Counter()
            self.request_times_by_path: dict[str, list[float]] = defaultdict(list)
            self.accepted_request_times_by_path: dict[str, list[float]] = defaultdict(list)
            self.status_counts: Counter[int] = Counter()
            self.fault_counts: Counter[str] = Counter()
            self.received_bodies: list[tuple[str, Any]] = []
            self.reset_state()

    # -- lifecycle -------------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> Self:
        handler = type("Handler", (_Handler,), {"emulator": self, "server_version": f"{self.server_name}/1.0"})
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=self.server_name, daemon=True
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request pipeline (called from handler threads) ------------------------------------------------------
    def rate_limit_key(self, path: str) -> str:
        """The window a request counts in: its own path, the longest configured prefix, or "*" (every path)."""
        if path in self.rate_limits:
            return path
        prefixes = [key for key in self.rate_limits if key.endswith("/") and path.startswith(key)]
        if prefixes:
            return max(prefixes, key=len)
        return "*" if "*" in self.rate_limits else path

    def admit(self, path: str, now: float) -> str | None:
        """Rate limit and fault roll for one authenticated request; returns a fault kind or None."""
        with self._lock:
            path = self.rate_limit_key(path)
            limit = self.rate_limits.get(path)
            if limit is not None:
                recent = [t for t in self.accepted_request_times_by_path[path] if now - t < self.rate_window_seconds]
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

    def max_accepted_in_any_window(self, path: str) -> int:
        """The most accepted requests of one rate-limit window key within any `rate_window_seconds` span."""
        with self._lock:
            times = sorted(self.accepted_request_times_by_path[path])
        most, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= self.rate_window_seconds:
                start += 1
            most = max(most, end - start + 1)
        return most


def serve_until_interrupted(emulator: LoopbackEmulator, name: str) -> None:
    """Run an emulator in the foreground (the `python -m ...` entry points), logging its counters every 5 s."""
    logging.basicConfig(level=logging.INFO)
    emulator.freeze_stored = True
    with emulator:
        print(f"{name} emulator listening on {emulator.base_url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(5)
                logger.info("requests: %s statuses: %s", dict(emulator.requests_by_path), dict(emulator.status_counts))
        except KeyboardInterrupt:
            pass


class _Handler(BaseHTTPRequestHandler):
    emulator: LoopbackEmulator
    protocol_version = "HTTP/1.1"
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

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, self.emulator.error_body(status, code, message))

    def do_GET(self) -> None:
        self._error(404, "NotFound", f"no route for GET {self.path}")

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

        if self.headers.get(emu.key_header) != emu.api_key:
            self._error(401, "BadApiKey", "Invalid API key")
            return
        route = emu.route(method, path, query)
        if route is None:
            self._error(404, "NotFound", f"no route for {method} {path}")
            return
        if length > emu.max_body_bytes:
            self._error(413, "BatchTooLarge", f"request body over {emu.max_body_bytes} bytes")
            return

        fault = emu.admit(path, now)
        if fault in ("rate_limited", "429"):
            headers = {"Retry-After": emu.retry_after} if emu.retry_after is not None else {}
            self._send(429, "Too Many Requests", text=True, headers=headers)
            return
        if fault == "500":
            self._error(500, "GenericError", "Internal server error (injected)")
            return
        if fault == "slow":
            time.sleep(emu.slow_seconds)

        try:
            # orjson parses a 1 MB body in a few ms, holding the GIL that briefly (the stdlib takes ~15 ms): a
            # request arriving meanwhile on another connection is stamped on time
            body = orjson.loads(raw) if emu.parse_float is float else json.loads(raw, parse_float=emu.parse_float)
        except ValueError:
            self._error(400, "BadJsonBody", "could not parse the request body as JSON")
            return
        with emu._lock:
            emu.received_bodies.append((path, body))
        try:
            response = route(body)
        except BadRequest as exc:
            self._error(400, exc.code, str(exc))
            return
        if emu.freeze_stored:
            gc.freeze()
        self._send(200, response)
