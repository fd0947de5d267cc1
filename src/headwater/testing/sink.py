"""A minimal stand-in for Braze's ``/users/track``, for client tests and the delivery bench.

Not the sandbox: it stores nothing and validates almost nothing. It answers the way Braze
does *on the wire* after a configurable delay (201 success bodies with ``*_processed``
counts, per-object ``errors``, ``X-RateLimit-*`` headers over fixed clock-aligned windows,
429 when the window is spent) and lets a test script faults: a 429 storm, 5xx answers,
dropped connections, stalls longer than the client's timeout. It is a raw ASGI app so the
server side costs little CPU when the benchmark pushes thousands of requests a second.

Run it in its own process (so a benchmark measures only the client's CPU)::

    python -m headwater.testing.sink --port 9099 --delay 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

# The contract's own words and limits, so the sink cannot drift from what the client expects.
from headwater.braze.errors import (
    MSG_BAD_JSON,
    MSG_MAX_INPUT,
    MSG_NO_VALID_DATA,
    MSG_NOT_FOUND,
    MSG_RATE_LIMITED,
)
from headwater.braze.identifiers import MSG_IDENTIFIER_REQUIRED, PRIMARY_KEYS, SECONDARY_KEYS
from headwater.braze.limits import MAX_OBJECTS_PER_REQUEST, TRACK_ARRAYS

IDENTIFIER_KEYS = PRIMARY_KEYS + SECONDARY_KEYS

Reject = Callable[[str, dict], str | None]


def reject_without_identifier(kind: str, obj: dict) -> str | None:
    """The sink's default per-object check: an object must name its user."""
    if not isinstance(obj, dict) or not any(key in obj for key in IDENTIFIER_KEYS):
        return MSG_IDENTIFIER_REQUIRED
    reason = obj.get("_sink_reject")
    return str(reason) if reason else None


@dataclass
class Fault:
    """One scripted answer for the next request: a status, a dropped connection or a stall."""

    status: int | None = None
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    stall_seconds: float = 0.0


@dataclass
class SinkStats:
    requests: int = 0
    track_requests: int = 0
    objects: int = 0
    accepted: int = 0
    statuses: Counter = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    arrivals: list[float] = field(default_factory=list)  # monotonic, one per request


class TrackSink:
    """An ASGI app answering like Braze's ``/users/track`` (and a few id endpoints)."""

    def __init__(
        self,
        delay_seconds: float = 0.0,
        *,
        api_key: str | None = None,
        rate_limit: int | None = None,
        rate_window_seconds: float = 1.0,
        reset_form: str = "epoch",
        reject: Reject | None = reject_without_identifier,
        invalid_is_fatal: bool = False,
        max_objects: int = MAX_OBJECTS_PER_REQUEST,
        keep_objects: bool = False,
    ) -> None:
        if reset_form not in ("epoch", "seconds", "retry_after"):
            raise ValueError("reset_form is epoch, seconds or retry_after")
        self.delay_seconds = delay_seconds
        self.api_key = api_key
        self.rate_limit = rate_limit
        self.rate_window_seconds = rate_window_seconds
        self.reset_form = reset_form
        self.reject = reject
        self.invalid_is_fatal = invalid_is_fatal
        self.max_objects = max_objects
        self.keep_objects = keep_objects
        self.stats = SinkStats()
        self.accepted_objects: list[tuple[str, dict]] = []
        self.headers_seen: list[dict[str, str]] = []
        self.bodies: list[dict] = []  # every /users/track body received, when keep_objects
        self._faults: deque[Fault] = deque()
        self._storm_until = 0.0
        self._window: tuple[int, int] = (-1, 0)  # (window index, requests in it)

    # -- scripting ---------------------------------------------------------------------

    def script(self, *faults: Fault) -> None:
        """Answer the next requests with these faults, one each, in order."""
        self._faults.extend(faults)

    def storm(self, seconds: float) -> float:
        """Answer 429 to everything for ``seconds``; returns the storm's end (epoch)."""
        self._storm_until = time.time() + seconds
        return self._storm_until

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        stats = self.stats
        stats.requests += 1
        stats.arrivals.append(time.monotonic())
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            if self.keep_objects:
                self.headers_seen.append(headers)
            fault = self._faults.popleft() if self._faults else None
            # Counted on arrival, as Braze counts a request against its window.
            limits = self._rate_headers()
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            if fault is not None and fault.stall_seconds:
                await asyncio.sleep(fault.stall_seconds)
            if fault is not None and fault.drop:
                stats.statuses["dropped"] += 1
                await _drop(send)
                return
            status, body, extra = self._answer(scope, headers, b"".join(chunks), fault, limits)
        finally:
            stats.in_flight -= 1
        stats.statuses[status] += 1
        payload = orjson.dumps(body)
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        raw_headers += [(k.encode(), str(v).encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    # -- answers -------------------------------------------------------------------------

    def _rate_headers(self) -> tuple[bool, dict[str, str]]:
        """Count this request in the current fixed window; (over the limit?, headers)."""
        now = time.time()
        if now < self._storm_until:
            return True, self._limit_headers(
                limit=self.rate_limit or 1, remaining=0, reset=self._storm_until, now=now, over=True
            )
        if self.rate_limit is None:
            return False, {}
        index = int(now // self.rate_window_seconds)
        seen_index, count = self._window
        count = count + 1 if seen_index == index else 1
        self._window = (index, count)
        reset = (index + 1) * self.rate_window_seconds
        over = count > self.rate_limit
        remaining = max(0, self.rate_limit - count)
        return over, self._limit_headers(self.rate_limit, remaining, reset, now, over)

    def _limit_headers(
        self, limit: int, remaining: int, reset: float, now: float, over: bool
    ) -> dict[str, str]:
        if self.reset_form == "retry_after" and over:
            return {"X-Ratelimit-Retry-After": str(math.ceil(reset - now))}
        value = math.ceil(reset) if self.reset_form != "seconds" else math.ceil(reset - now)
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(value),
        }

    def _answer(
        self,
        scope,
        headers: dict[str, str],
        raw: bytes,
        fault: Fault | None,
        limits: tuple[bool, dict[str, str]],
    ) -> tuple[int, dict, dict[str, str]]:
        over, limit_headers = limits
        if fault is not None and fault.status is not None:
            body = fault.body if fault.body is not None else {"message": "Scripted fault"}
            return fault.status, body, {**limit_headers, **fault.headers}
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, {"message": "Invalid API key: <redacted>"}, {}
        if over:
            return 429, {"message": MSG_RATE_LIMITED}, limit_headers
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return 400, {"message": MSG_BAD_JSON}, limit_headers
        path = scope["path"].rstrip("/")
        if path == "/users/track":
            status, answer = self._track(body)
        elif path == "/users/export/ids":
            ids = body.get("external_ids") or []
            status, answer = (
                201,
                {
                    "users": [{"external_id": i} for i in ids],
                    "invalid_user_ids": [],
                    "message": "success",
                },
            )
        elif path == "/users/alias/new":
            status, answer = (
                201,
                {"aliases_processed": len(body.get("user_aliases") or []), "message": "success"},
            )
        elif path == "/users/delete":
            count = sum(
                len(body.get(k) or []) for k in ("external_ids", "user_aliases", "braze_ids")
            )
            status, answer = 201, {"deleted": count, "message": "success"}
        elif path in ("/users/identify", "/campaigns/trigger/send", "/canvas/trigger/send"):
            status, answer = 201, {"message": "success"}
        else:
            status, answer = 404, {"message": MSG_NOT_FOUND}
        return status, answer, limit_headers

    def _track(self, body: object) -> tuple[int, dict]:
        self.stats.track_requests += 1
        if self.keep_objects:
            self.bodies.append(body)
        if not isinstance(body, dict):
            return 400, {"message": MSG_NO_VALID_DATA}
        arrays = {k: body[k] for k in TRACK_ARRAYS if isinstance(body.get(k), list) and body[k]}
        total = sum(len(v) for v in arrays.values())
        if not total:
            return 400, {"message": MSG_NO_VALID_DATA}
        if total > self.max_objects:
            return 400, {"message": MSG_MAX_INPUT}
        self.stats.objects += total
        errors, good = [], []
        for kind, objects in arrays.items():
            for index, obj in enumerate(objects):
                reason = self.reject(kind, obj) if self.reject else None
                if reason:
                    errors.append({"type": reason, "input_array": kind, "index": index})
                else:
                    good.append((kind, obj))
        if errors and (self.invalid_is_fatal or not good):
            return 400, {"message": MSG_NO_VALID_DATA, "errors": errors}
        self.stats.accepted += len(good)
        if self.keep_objects:
            self.accepted_objects.extend(good)
        answer: dict = {"message": "success"}
        for kind, objects in arrays.items():
            answer[f"{kind}_processed"] = len(objects) - sum(
                1 for e in errors if e["input_array"] == kind
            )
        if errors:
            answer["errors"] = errors
        return 201, answer


async def _drop(send) -> None:
    """Close the connection without answering, like a load balancer dropping it."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:  # pragma: no cover - another ASGI server: fail mid-response
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})
        raise ConnectionAbortedError("sink dropped the connection")
    transport.abort()
    # Let the server notice the lost connection so it does not log a missing response.
    await asyncio.sleep(0)
    await asyncio.sleep(0)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per window")
    parser.add_argument("--rate-window", type=float, default=1.0, help="window, seconds")
    args = parser.parse_args(argv)
    sink = TrackSink(args.delay, rate_limit=args.rate_limit, rate_window_seconds=args.rate_window)
    uvicorn.run(
        sink, host=args.host, port=args.port, log_level="warning", access_log=False, backlog=4096
    )


if __name__ == "__main__":
    main()
