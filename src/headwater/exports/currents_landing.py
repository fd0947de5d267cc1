"""Moves committed Currents batches into the landing: Parquet files DuckDB reads while
``serve`` keeps writing.

Why Parquet files and not a table in the warehouse: DuckDB lets one process hold its
database file for writing, so a ``serve`` that wrote events into ``warehouse.duckdb``
would lock out every user query (and every ``headwater sync``) for as long as it runs.
Files written under a temporary name and renamed into place are never seen half written,
and any number of readers query them at once:

    SELECT * FROM read_parquet('.headwater/landing/currents/braze/users.behaviors.Purchase/*.parquet')

Layout: ``<landing>/currents/<receiver>/<event_type>/part-<seq>-<key>.parquet``, one file per
event type per landing (``Landing.name``, see ``headwater.state.currents``). A
landing's files are written, synced to disk, and only then do its batches leave the state
store; a crash in between writes the same files again under the same names, so an event is
never landed twice nor lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from headwater.exports.currents_events import columns_of, flatten
from headwater.state.currents import CurrentsLedger, Landing

log = logging.getLogger("headwater.currents")

MAX_EVENTS_PER_LANDING = 50_000  # bounds one landing's memory and its files' size
POLL_SECONDS = 0.5  # batches committed by another process, landings left by a dead one
LINGER_SECONDS = 0.2  # lets a landing gather more than one group commit's batches
FORGET_EVERY_SECONDS = 600.0
STOP_WAIT_SECONDS = 10.0

_ARROW = {str: pa.string(), float: pa.float64(), bool: pa.bool_(), "json": pa.string(),
          "timestamp": pa.timestamp("us", tz="UTC")}  # fmt: skip


@functools.lru_cache(maxsize=1024)
def schema_of(event_type: str) -> pa.Schema:
    return pa.schema([(name, _ARROW[kind]) for name, kind in columns_of(event_type)])


def landing_path(root: Path, receiver: str, event_type: str, landing: str) -> Path:
    return root / "currents" / receiver / event_type / f"part-{landing}.parquet"


def rows_of(landing: Landing) -> dict[tuple[str, str], list[dict]]:
    """The landing's events by (receiver, event type): those whose id it owns, each once,
    in the order Braze sent them. The same landing always gives the same rows."""
    tables: dict[tuple[str, str], list[dict]] = {}
    written: set[tuple[str, str]] = set()
    for batch in landing.batches:
        owned = landing.owned.get(batch.receiver, set())
        for event in orjson.loads(batch.payload)["events"]:
            key = (batch.receiver, event["id"])
            if event["id"] not in owned or key in written:
                continue
            written.add(key)
            row = flatten(event, batch.received_at)
            tables.setdefault((batch.receiver, event["event_type"]), []).append(row)
    return tables


def _table(event_type: str, rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema_of(event_type))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_landing(root: Path, landing: Landing) -> list[Path]:
    """Write (or write again) the landing's files, each atomically and synced."""
    written = []
    for (receiver, event_type), rows in rows_of(landing).items():
        target = landing_path(root, receiver, event_type, landing.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        with open(temporary, "wb") as handle:
            pq.write_table(_table(event_type, rows), handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        _fsync_dir(target.parent)
        written.append(target)
    return written


class LandingWorker:
    """One per ``serve`` process: lands whatever is committed, within about a second."""

    def __init__(self, hub, root: Path, *, max_events: int = MAX_EVENTS_PER_LANDING) -> None:
        self.hub = hub
        self.root = Path(root)
        self.max_events = max_events
        self.ledger = CurrentsLedger(hub.engine)
        self.landed = 0  # events written by this worker
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._forgot_at = 0.0

    def start(self) -> None:
        self._wake = self.hub.outbox.subscribe()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, deadline: float | None = None) -> None:
        """Land nothing new; a landing in progress may finish until ``deadline``
        (monotonic), else it is cancelled and written again by the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        if deadline is None:
            deadline = time.monotonic() + STOP_WAIT_SECONDS
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(
                asyncio.shield(self._task), max(0.0, deadline - time.monotonic())
            )
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        take_over_all = True  # at start: landings a crashed process left are written again
        outbox = self.hub.outbox
        while not self._stopping:
            try:
                landing = await outbox.write(
                    self.ledger.next_landing, self.max_events, take_over_all
                )
                if landing is None or not landing.resumed:
                    take_over_all = False
                if landing is None:
                    await self._idle()
                    continue
                await asyncio.to_thread(write_landing, self.root, landing)
                await outbox.write(self.ledger.finish, landing.seq)
                self.landed += sum(len(v) for v in landing.owned.values())
                await self._forget_old()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the state store or the disk: try again shortly
                log.error("landing Currents events failed: %s: %s", type(exc).__name__, exc)
                await asyncio.sleep(POLL_SECONDS)

    async def _idle(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        if not self._stopping:
            await asyncio.sleep(LINGER_SECONDS)

    async def _forget_old(self) -> None:
        now = time.time()
        if now - self._forgot_at < FORGET_EVERY_SECONDS:
            return
        self._forgot_at = now
        days = max((r.dedupe_days for r in self.hub.settings.currents.values()), default=8.0)
        await self.hub.outbox.write(self.ledger.forget, now - days * 86400)
