"""Relays a receiver's events to another HTTP endpoint (``currents.<name>.forward``), the
way Optimizely relays Braze Currents: through the durable outbox, with retries and a
dead-letter queue.

The receiver commits each event as an outbox object (kind ``currents``, destination
``currents:<name>``) in the same transaction as its batch, so a forward is never lost
between the 2xx and the relay. This worker, one per forwarding receiver, leases up to
``batch_size`` events, POSTs them as Braze would (``{"events": [...]}``,
``Braze-Currents-Version: 1``, the forward's own bearer token) and answers the outcome the
way Braze's connector does: 2xx delivered; 400 re-sent one event per request and an event
refused again is parked; 413 split in halves; 429, 5xx, timeouts and everything else go
back with backoff and are parked after ``max_attempts``. It lives in ``exports`` (not
``delivery``, which speaks Braze's REST API): it only shares the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

import httpx

from headwater.braze.retry import Backoff, backoff_seconds, retry_after_seconds
from headwater.config.currents import CurrentsForward
from headwater.state.dead_letters import park_objects
from headwater.state.outbox import OutboxRow, Retry

log = logging.getLogger("headwater.currents")

POLL_SECONDS = 0.5
STOP_WAIT_SECONDS = 10.0
HANDED_BACK = "handed back unsent at shutdown"


@dataclass
class _Outcome:
    delivered: set[int] = field(default_factory=set)  # indexes into the round's lines
    parked: dict[int, str] = field(default_factory=dict)
    retry: dict[int, str] = field(default_factory=dict)
    retry_after: float | None = None


class ForwardWorker:
    def __init__(self, hub, name: str, forward: CurrentsForward, destination: str) -> None:
        self.hub = hub
        self.name = name
        self.forward = forward
        self.destination = destination
        self.backoff = Backoff(forward.retry_base_seconds, forward.retry_max_seconds)
        headers = {"Braze-Currents-Version": "1", "Content-Type": "application/json"}
        if forward.token is not None:
            headers["Authorization"] = f"Bearer {forward.token.get_secret_value()}"
        self.http = httpx.AsyncClient(headers=headers, timeout=forward.timeout_seconds)
        self.forwarded = 0
        self.parked = 0
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        self._wake = self.hub.outbox.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, deadline: float | None = None) -> None:
        """Claim nothing more; a round in flight may finish until ``deadline``; cancelled
        past it, its rows go back with the process's other leases (``release_owned``)."""
        self._stopping = True
        self._wake.set()
        if deadline is None:
            deadline = time.monotonic() + STOP_WAIT_SECONDS
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(
                    asyncio.shield(self._task), max(0.0, deadline - time.monotonic())
                )
            if not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.http.aclose()

    async def _run(self) -> None:
        outbox = self.hub.outbox
        while not self._stopping:
            try:
                rows = await outbox.write(outbox.claim, self.destination, self.forward.batch_size)
                if not rows:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                    continue
                await self._round(rows)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("forwarding %s failed: %s", self.name, type(exc).__name__)
                await asyncio.sleep(POLL_SECONDS)

    async def _round(self, rows: list[OutboxRow]) -> None:
        lines = [(row, line) for row in rows for line in row.lines()]
        outcome = _Outcome()
        size = self.forward.batch_size
        for start in range(0, len(lines), size):
            await self._send(list(range(start, min(start + size, len(lines)))), lines, outcome)
        await self.hub.outbox.write(self._settle, rows, lines, outcome)

    async def _send(self, indexes: list[int], lines, outcome: _Outcome) -> None:
        body = b'{"events":[' + b",".join(lines[i][1] for i in indexes) + b"]}"
        try:
            answer = await self.http.post(self.forward.url, content=body)
            status, reason = answer.status_code, f"{self.forward.url} answered {answer.status_code}"
        except httpx.HTTPError as exc:
            status, reason = None, f"{type(exc).__name__} posting to the forward url"
            answer = None
        if status is not None and 200 <= status < 300:
            outcome.delivered.update(indexes)
            self.forwarded += len(indexes)
        elif status in (400, 413) and len(indexes) > 1:
            parts = [[i] for i in indexes] if status == 400 else _halves(indexes)
            for part in parts:
                await self._send(part, lines, outcome)
        elif status in (400, 413):
            outcome.parked[indexes[0]] = reason
        else:
            for i in indexes:
                outcome.retry[i] = reason
            if answer is not None:
                hint = retry_after_seconds(answer.headers, time.time())
                if hint is not None:
                    outcome.retry_after = max(outcome.retry_after or 0.0, hint)

    def _settle(self, rows: list[OutboxRow], lines, outcome: _Outcome) -> None:
        """One transaction: parked events to the dead letters, settled rows out, the
        others back with only their unsettled events (parked after ``max_attempts``)."""
        letters, done, retries = [], [], {}
        by_row: dict[int, list[int]] = {}
        for index, (row, _line) in enumerate(lines):
            by_row.setdefault(row.id, []).append(index)
        for row in rows:
            left = []
            for index in by_row.get(row.id, []):
                if index in outcome.parked:
                    letters.append((row, lines[index][1], outcome.parked[index]))
                elif index in outcome.retry:
                    left.append(index)
            if not left:
                done.append(row.id)
                continue
            reason = outcome.retry[left[0]]
            if row.attempts + 1 >= self.forward.max_attempts:
                letters.extend((row, lines[i][1], reason) for i in left)
                done.append(row.id)
                continue
            delay = backoff_seconds(row.attempts + 1, self.backoff, retry_after=outcome.retry_after)
            retries[row.id] = Retry(reason, delay, [lines[i][1] for i in left])
        with self.hub.engine.begin() as conn:
            park_objects(conn, letters)
            self.hub.outbox.ack(done, conn)
            self.hub.outbox.release(retries, conn)
        self.parked += len(letters)


def _halves(indexes: list[int]) -> list[list[int]]:
    middle = len(indexes) // 2
    return [indexes[:middle], indexes[middle:]]
