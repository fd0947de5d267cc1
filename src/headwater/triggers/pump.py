"""The event-trigger pump in ``headwater serve``: drains ``trigger_inbox`` (filled by the
delivery worker as Braze accepts matching events) and fires each trigger through the
ledger, then drops the rows. A row drained twice (two serve processes, a crash before the
drop) fires once: its entry key is the same and the ledger's claim decides."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson

from headwater.config.triggers import TriggerConfig
from headwater.state import triggers as ledger
from headwater.triggers.events import event_entry
from headwater.triggers.fire import fire_one

log = logging.getLogger("headwater.triggers")
POLL_SECONDS = 1.0
TAKE_ROWS = 500


class TriggerPump:
    """``clients(destination)`` gives the hub's shared client for a destination."""

    def __init__(self, engine, triggers: dict[str, TriggerConfig], clients) -> None:
        self.engine = engine
        self.triggers = triggers
        self.clients = clients
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        ledger.trigger_sends.create(self.engine, checkfirst=True)
        ledger.trigger_inbox.create(self.engine, checkfirst=True)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, deadline: float | None = None) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                drained = await self.drain()
            except Exception:  # the store is away: try again next round
                log.exception("trigger pump round failed")
                drained = 0
            if not drained:
                await asyncio.sleep(POLL_SECONDS)

    async def drain(self) -> int:
        """One round: fire what the inbox holds; return how many rows it held."""
        rows = await asyncio.to_thread(ledger.take_inbox, self.engine, TAKE_ROWS)
        by_trigger: dict[str, list] = {}
        for row_id, trigger, key, event in rows:
            by_trigger.setdefault(trigger, []).append((row_id, key, event))
        for name, items in by_trigger.items():
            trigger = self.triggers.get(name)
            if trigger is not None:
                keyed = []
                for _id, key, event in items:
                    _, entry = event_entry(orjson.loads(event), 0, 0)
                    keyed.append((key, entry))
                client = self.clients(trigger.destination)
                await fire_one(self.engine, name, trigger, keyed, client)
            # (a trigger no longer declared: its rows are dropped unsent)
            await asyncio.to_thread(ledger.drop_inbox, self.engine, [i for i, _, _ in items])
        return len(rows)
