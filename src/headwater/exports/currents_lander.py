"""Writes Currents landings in a process of its own, beside ``serve``'s event loop.

Why a process and not a thread: turning a landing into Parquet holds the interpreter lock
for most of its time (reading the batches back, decoding their ids, building DuckDB's
input), and while it does, the event loop cannot answer Braze. Measured on 2 cores: with
the landing on a thread, accepts waited for it (p99 in the hundreds of milliseconds at
10,000 events/s); in a process they only share the cores. The process reads its landing
from the state store itself (a read: no write lock taken, nothing copied through a pipe)
and only writes files; every state write stays on the outbox's writer thread.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from sqlalchemy import Engine

from headwater.exports.currents_compact import compact_landing
from headwater.state.currents import CurrentsLedger, Landing

PARENT_CHECK_SECONDS = 1.0
_engines: dict[str, Engine] = {}  # the child's, per state URL
_databases: dict[str, object] = {}


def land(url: str, root: str, seq: int, resumed: bool) -> dict[tuple[str, str], int]:
    """In the landing process: write landing ``seq`` (claimed already), then compact
    what is due (``currents_compact``); returns its events per (receiver, event type)."""
    from headwater.exports.currents_landing import landed_counts, landing_database, write_landing
    from headwater.state.db import open_state

    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = open_state(url)
    db = _databases.get("db")
    if db is None:
        db = _databases["db"] = landing_database()
    ledger = CurrentsLedger(engine)
    landing = Landing(seq, ledger.read_batches(seq), ledger.read_owned(seq), resumed)
    counts = landed_counts(Path(root), write_landing(Path(root), landing, db))
    compact_landing(Path(root), ledger.named_landings(), db)  # after counting its files
    return counts


def _follow_parent(parent: int) -> None:
    """The landing process's initializer: exit when ``serve`` is gone (a SIGKILL leaves no
    one to shut the pool down, and the pool's pipe never reports it)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(0)  # a landing cut short is written again by the next serve

    threading.Thread(target=watch, name="follow-serve", daemon=True).start()


def _warm() -> None:
    import headwater.exports.currents_landing  # noqa: F401  (duckdb and friends, once)


def _in_memory(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


class Lander:
    """One landing process per ``serve`` (spawned, not forked: the parent runs threads),
    started on first use and again if it dies. A state store another process cannot open
    (in-memory SQLite) is landed on a thread instead."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=False)  # never logged
        self.own_process = not _in_memory(engine)
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self.own_process and self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                1, mp_context=context, initializer=_follow_parent, initargs=(os.getpid(),)
            )
            self._pool.submit(_warm)  # its imports before the first landing, not during

    async def land(self, root: Path, seq: int, resumed: bool) -> dict[tuple[str, str], int]:
        if not self.own_process:
            return await asyncio.to_thread(_land_here, self.engine, root, seq, resumed)
        self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, land, self.url, str(root), seq, resumed)
        except BrokenProcessPool:
            self.close()  # the next landing starts a new process and writes it again
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _land_here(engine: Engine, root: Path, seq: int, resumed: bool) -> dict[tuple[str, str], int]:
    from headwater.exports.currents_landing import landed_counts, landing_database, write_landing

    ledger = CurrentsLedger(engine)
    landing = Landing(seq, ledger.read_batches(seq), ledger.read_owned(seq), resumed)
    db = landing_database()
    try:
        counts = landed_counts(root, write_landing(root, landing, db))
        compact_landing(root, ledger.named_landings(), db)  # after counting its files
    finally:
        db.close()
    return counts
