"""The sandbox's Currents emitter: what Braze's custom HTTP Currents connector would post
about this workspace, posted to a configured URL, so a hub's receiver (or any Currents
consumer) can be developed and tested without Braze.

Recorded: custom events and purchases applied by ``/users/track`` (as
``users.behaviors.CustomEvent`` / ``users.behaviors.Purchase``), and anything a sandbox
service hands to ``record`` (trigger sends, as ``users.messages.<channel>.Send``). Posted
as Braze posts them: ``{"events": [...]}`` of at most ``batch_size`` (100), header
``Braze-Currents-Version: 1``, ``Authorization: Bearer <token>``. Answers are treated as
Braze's connector treats them: 2xx done; 5xx, 429, 401/403 and network errors retried with
exponential backoff and jitter (the batch stays first in line, so order is kept); 413
split in halves; 400 re-sent one event per request, and an event refused again dropped
(counted in ``status()``). Delivery is at least once, like Currents: an event may come
twice, never with another ``id``.

Configured by ``SandboxSettings.currents_url``/``currents_token`` (``headwater sandbox
--currents-url``), or at run time by ``POST /_sandbox/currents``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable

import httpx
import orjson
from fastapi import APIRouter, Body, HTTPException, Request

from headwater.braze.retry import Backoff, backoff_seconds
from headwater.braze.timeparse import parse_braze_time

log = logging.getLogger("headwater.sandbox.currents")

MAX_BATCH = 100
MAX_QUEUED = 1_000_000  # beyond this the oldest events are dropped (counted)


class CurrentsEmitter:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        batch_size: int = MAX_BATCH,
        linger_seconds: float = 0.2,
        backoff: Backoff = Backoff(base_seconds=0.5, cap_seconds=30.0),
        app_group_id: str = "sandbox",
        post: Callable[[str, bytes, dict], int] | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.batch_size = batch_size
        self.linger_seconds = linger_seconds
        self.backoff = backoff
        self.app_group_id = app_group_id
        self._post = post
        self._queue: deque[dict] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx.Client | None = None
        self.counts = {"recorded": 0, "posted": 0, "dropped": 0, "retries": 0}
        self.last_error: str | None = None

    # ---- configuration ---------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def configure(self, url: str | None, token: str | None, batch_size: int | None = None) -> None:
        with self._lock:
            self.url, self.token = url, token
            if batch_size is not None:
                self.batch_size = batch_size
        self._wake.set()

    def status(self) -> dict:
        with self._lock:
            queued = len(self._queue)
        return {"url": self.url, "batch_size": self.batch_size, "queued": queued,
                **self.counts, "last_error": self.last_error}  # fmt: skip

    # ---- recording -------------------------------------------------------------------

    def record(self, event_type: str, user: dict, properties: dict, at: float | None = None):
        """Queue one Currents event (nothing when no URL is configured)."""
        if not self.enabled:
            return
        event = {
            "event_type": event_type,
            "id": str(uuid.uuid4()),
            "time": int(at if at is not None else time.time()),
            "user": {k: v for k, v in user.items() if v is not None},
            "properties": {"app_group_id": self.app_group_id, **properties},
        }
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.counts["dropped"] += 1
            self._queue.append(event)
            self.counts["recorded"] += 1
            self._idle.clear()
        self._start()
        self._wake.set()

    def record_track(self, applied: list[tuple[str, dict, dict]]) -> None:
        """Hook for ``UsersBackend.users_track``: (kind, profile, object) per applied event
        or purchase."""
        for kind, profile, obj in applied:
            user = {
                "user_id": profile.get("braze_id"),
                "external_user_id": profile.get("external_id"),
            }
            at = _event_time(obj.get("time"))
            if kind == "event":
                props = {"name": obj.get("name"), "app_id": obj.get("app_id"),
                         "custom_properties": obj.get("properties") or {}}  # fmt: skip
                self.record("users.behaviors.CustomEvent", user, _clean(props), at)
            elif kind == "purchase":
                props = {"product_id": obj.get("product_id"), "price": obj.get("price"),
                         "currency": obj.get("currency"), "app_id": obj.get("app_id"),
                         "purchase_properties": obj.get("properties") or {}}  # fmt: skip
                for _ in range(max(1, int(obj.get("quantity") or 1))):
                    self.record("users.behaviors.Purchase", user, _clean(props), at)

    def record_send(self, channel: str, user: dict, properties: dict) -> None:
        """A message the sandbox sent (campaign or canvas trigger): ``channel`` is email,
        pushnotification, sms, webhook..."""
        self.record(f"users.messages.{channel}.Send", user, _clean(properties))

    # ---- posting ---------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="currents-emitter", daemon=True)
            self._thread.start()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything recorded was posted (or dropped); False on timeout."""
        self._wake.set()
        return self._idle.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._client is not None:
            self._client.close()

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            with self._lock:
                batch = [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))]
                url, token = self.url, self.token
            if not batch or not url:
                self._idle.set()
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            if len(batch) < self.batch_size and attempt == 0:
                self._stop.wait(self.linger_seconds)  # let a batch fill, as Braze does
                with self._lock:
                    size = min(self.batch_size, len(self._queue))
                    batch = [self._queue[i] for i in range(size)]
            retry = self._deliver(url, token, batch)
            if retry is None:
                with self._lock:
                    for _ in batch:
                        self._queue.popleft()
                attempt = 0
                continue
            attempt += 1
            self.counts["retries"] += 1
            self._stop.wait(backoff_seconds(attempt, self.backoff))

    def _deliver(self, url: str, token: str | None, events: list[dict]) -> str | None:
        """Post ``events``; None once every one is settled (posted or dropped), else the
        reason to retry the whole lot."""
        status, reason = self._send(url, token, events)
        if status is not None and 200 <= status < 300:
            self.counts["posted"] += len(events)
            return None
        if status in (400, 413) and len(events) > 1:
            parts = [[e] for e in events] if status == 400 else _halves(events)
            for part in parts:
                # A part that must be retried is retried on its own, before the rest.
                while (failed := self._deliver(url, token, part)) is not None:
                    self.counts["retries"] += 1
                    if self._stop.wait(backoff_seconds(1, self.backoff)):
                        return failed
            return None
        if status in (400, 413):
            self.counts["dropped"] += 1  # Braze drops an event refused twice
            self.last_error = reason
            return None
        self.last_error = reason
        return reason

    def _send(self, url: str, token: str | None, events: list[dict]) -> tuple[int | None, str]:
        body = orjson.dumps({"events": events})
        headers = {"Braze-Currents-Version": "1", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            if self._post is not None:
                status = self._post(url, body, headers)
            else:
                if self._client is None:
                    self._client = httpx.Client(timeout=30)
                status = self._client.post(url, content=body, headers=headers).status_code
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__} posting to {url}"
        return status, f"{url} answered {status}"


def _halves(events: list[dict]) -> list[list[dict]]:
    middle = len(events) // 2
    return [events[:middle], events[middle:]]


def _clean(props: dict) -> dict:
    return {k: v for k, v in props.items() if v is not None}


def _event_time(value: object) -> float | None:
    try:
        parsed = parse_braze_time(value)
    except Exception:
        return None
    return parsed.timestamp() if parsed is not None else None


# ---- /_sandbox/currents -------------------------------------------------------------

router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])


@router.get("/currents")
async def currents_status(request: Request):
    from headwater.sandbox.control import _sandbox

    return _sandbox(request).currents.status()


@router.post("/currents")
async def currents_configure(request: Request, body: dict = Body(...)):
    """``{"url": "https://hub/currents/braze", "token": "...", "batch_size": 100}``; a null
    url stops emitting."""
    from headwater.sandbox.control import _sandbox

    emitter = _sandbox(request).currents
    url, token, size = body.get("url"), body.get("token"), body.get("batch_size")
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise HTTPException(400, "url must be an http(s) URL or null")
    if token is not None and not isinstance(token, str):
        raise HTTPException(400, "token must be a string")
    if size is not None and (not isinstance(size, int) or not 1 <= size <= MAX_BATCH):
        raise HTTPException(400, f"batch_size must be an integer from 1 to {MAX_BATCH}")
    emitter.configure(url, token, size)
    return emitter.status()


@router.post("/currents/flush")
async def currents_flush(request: Request):
    """Wait (up to 30 s) until every recorded event was posted or dropped."""
    import asyncio

    from headwater.sandbox.control import _sandbox

    emitter = _sandbox(request).currents
    done = await asyncio.to_thread(emitter.flush, 30.0)
    return {"flushed": done, **emitter.status()}
