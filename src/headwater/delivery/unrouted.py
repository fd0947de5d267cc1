"""Rows no worker will ever claim, parked instead of waiting forever.

Delivery runs one worker per configured destination, so a row for any other destination
(a key or stream pointing at a destination that was never configured, or was removed while
rows waited) would sit in the outbox with no log and keep the depth up. The sweeper parks
such rows in the dead-letter queue with the reason and a log line; once the destination is
configured, ``headwater dlq replay`` sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from headwater.state.dead_letters import park_objects
from headwater.state.outbox import OutboxRow

log = logging.getLogger("headwater.delivery")

SWEEP_EVERY_POLLS = 10  # one look every ten delivery polls (5 s by default)


def unrouted_reason(destination: str, configured: list[str]) -> str:
    known = ", ".join(configured) or "none"
    return (
        f"destination {destination!r} is not configured in this project (configured: "
        f"{known}); replay once it is"
    )


class UnroutedSweeper:
    """Parks the rows of destinations that no worker of this process delivers to."""

    def __init__(self, hub) -> None:
        self.hub = hub
        self.configured = sorted({*hub.settings.destinations, *hub.settings.forward_destinations})
        self.interval = hub.settings.delivery.poll_seconds * SWEEP_EVERY_POLLS
        self.parked = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                while await self.sweep():
                    pass
            except Exception as exc:  # the next sweep tries again
                log.error("parking undeliverable rows failed: %s", type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> int:
        """Park one batch of unrouted rows; returns how many objects were parked."""
        outbox = self.hub.outbox
        rows = await outbox.write(outbox.claim_unrouted, self.configured)
        if not rows:
            return 0
        letters = [
            (row, line, unrouted_reason(row.destination, self.configured))
            for row in rows
            for line in row.lines()
        ]
        counters = Counter((row.stream, "dead_lettered") for row, _line, _why in letters)
        await outbox.write(self._commit, rows, letters, counters)
        by_destination = Counter(row.destination for row, _line, _why in letters)
        for destination, count in sorted(by_destination.items()):
            log.warning(
                "parked %d objects for destination %r in the dead-letter queue: %s",
                count,
                destination,
                unrouted_reason(destination, self.configured),
            )
        self.parked += len(letters)
        return len(letters)

    def _commit(self, rows: list[OutboxRow], letters, counters: Counter) -> None:
        with self.hub.engine.begin() as conn:
            park_objects(conn, letters)
            self.hub.outbox.ack([row.id for row in rows], conn)
            self.hub.counters.add(counters, conn)


__all__ = ["UnroutedSweeper", "unrouted_reason"]
