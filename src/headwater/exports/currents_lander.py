"""Runs Currents landings in a process of its own, beside ``serve``'s event loop.

Why a process and not a thread: a landing's work holds the interpreter lock or a core for
most of its time (naming it, claiming its event ids, reading the batches back, DuckDB
turning them into Parquet, deleting them), and while the event loop waits for it, Braze
waits. Measured on 2 cores with the bookkeeping in ``serve`` and only the files in the
process: serve spent 52-70 us of CPU per event, of which accepting was 12 (py-spy: the id
claims alone were 45% of serve's busy samples). So the whole landing cycle runs here: the
process opens the state store itself and ``serve`` only wakes it when batches arrive.

Its state writes are short transactions of their own (a few batches named, a landing's
batches deleted), so ``serve``'s intake commits, on SQLite's one write lock, wait for one
short step at most; on SQLite the event ids are claimed in a file of their own
(``headwater.state.currents_claims``), whose write lock intake never waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from sqlalchemy import Engine

from headwater.exports.currents_compact import compact_landing
from headwater.state.currents import CurrentsLedger, Landing
from headwater.state.writer_lock import writer_lock

PARENT_CHECK_SECONDS = 1.0
STEP_PAUSE_SECONDS = 0.002  # after each write step: the lock's waiters go first
LANDING_NICE = 10  # the landing's own work yields the CPU to serve (see _lower_priority)
CACHE_KIB = 131_072  # the landing process's SQLite page cache (default: 2 MB)
_engines: dict[str, Engine] = {}  # the child's, per state URL
_databases: dict[str, object] = {}
_writers: dict[str, object] = {}
_state_writes: list[ThreadPoolExecutor] = []  # the child's thread for state-store writes

# (seq, resumed, landed events per (receiver, event type)), or None: nothing to land
Cycle = tuple[int, bool, dict[tuple[str, str], int]] | None


def land_cycle(
    ledger: CurrentsLedger,
    root: Path,
    db,
    max_events: int,
    take_over_all: bool,
    write: Callable[[Callable[[], object]], object] = lambda fn: fn(),
) -> Cycle:
    """One landing, start to end: name it (or take over one a stopped worker left), claim
    its ids, write its files, compact what is due, and let its batches go. Each state write
    goes through ``write`` (in the landing process: run here; on a thread of ``serve``: on
    the outbox's writer thread)."""
    from headwater.exports.currents_landing import landed_counts, write_landing

    named = write(lambda: ledger.next_landing(max_events, take_over_all))
    if named is None:
        return None
    seq, resumed = named
    left = ledger.finishing(seq) if resumed else None
    if left is not None:  # its files were final: no claim, no file, no count again
        for step in ledger.delete_steps(seq, left):
            write(step)
        return seq, resumed, {}
    if not resumed:
        while write(lambda: ledger.grow(seq, max_events)):
            pass
    batches = ledger.read_batches(seq)  # a read: beside the writers
    if ledger.claims_apart:  # their own file and write lock: intake never waits on them
        ledger.sync_named()
        for step in ledger.claim_steps(seq, batches):
            step()
    else:
        for step in ledger.claim_steps(seq, batches):
            write(step)
    landing = Landing(seq, batches, ledger.read_owned(seq), resumed)
    counts = landed_counts(root, write_landing(root, landing, db))
    compact_landing(root, ledger.named_landings(), db)  # after counting its files
    for step in ledger.finish_steps(seq, counts, [b.id for b in batches]):
        write(step)
    return seq, resumed, counts


def _landing_engine(url: str) -> Engine:
    """The landing process's own engine on the state store. On SQLite: serve's checkpointer
    copies the WAL (this process's commits leave it alone), and a larger page cache keeps
    the claims' index (random ids: every claim touches its own page) in memory."""
    from sqlalchemy import event

    from headwater.state.db import open_state

    engine = open_state(url, background_checkpoints=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _big_cache)
        engine.dispose()  # connections made from now on get it
    return engine


def _big_cache(dbapi_connection, _record) -> None:
    dbapi_connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    # Debian's SQLite zeroes every page a delete frees (SECURE_DELETE): deleting a landed
    # batch (or marking one, which rewrites its row) wrote its payload's overflow pages
    # to the WAL again, inside the write lock intake waits for. FAST still zeroes deleted
    # records in b-tree pages; freed pages keep old bytes until reused (the same events
    # are in the landing's Parquet files).
    dbapi_connection.execute("PRAGMA secure_delete=FAST")


def _cycle_in_process(url: str, root: str, max_events: int, take_over_all: bool) -> Cycle:
    from headwater.exports.currents_landing import landing_database

    engine = _engines.get(url)
    if engine is None:
        # serve's checkpointer copies the WAL: this process's commits leave it alone
        engine = _engines[url] = _landing_engine(url)
    db = _databases.get("db")
    if db is None:
        db = _databases["db"] = landing_database()
    writers = _writers.get(url)
    if writers is None:
        writers = _writers[url] = writer_lock(engine) or False

    def write(fn):
        if not writers:
            return fn()
        try:
            return _locked(writers, fn)
        finally:
            time.sleep(STEP_PAUSE_SECONDS)  # serve's intake commit, woken, goes next

    return land_cycle(CurrentsLedger(engine), Path(root), db, max_events, take_over_all, write)


def _forget_in_process(url: str, older_than: float) -> int:
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = _landing_engine(url)
    writers = writer_lock(engine)
    ledger = CurrentsLedger(engine)
    if writers is None:
        return ledger.forget(older_than)
    _locked(writers, ledger.trim_rejected)
    if ledger.claims_apart:
        return ledger.forget_claims(older_than)
    return _locked(writers, lambda: ledger.forget_claims(older_than))


def _locked(writers, fn):
    """``fn`` holding the state store's writer queue, on the thread kept at serve's
    priority when there is one (``_lower_priority``)."""
    if not _state_writes:
        return writers.run(fn)
    return _state_writes[0].submit(writers.run, fn).result()


def _lower_priority() -> None:
    """Give way to ``serve`` for the CPU: measured on 2 cores, the accept p99 rose while
    this process wrote Parquet files or claimed ids (a core each time), with ``serve``
    hardly waiting for a lock. Linux keeps a nice value per thread, so the thread that
    writes the state store, whose write lock intake commits wait for, keeps serve's
    priority (a lock holder descheduled for lesser work would make intake wait longer);
    this thread, which runs the landings, is lowered. Elsewhere: nothing changes."""
    if not (sys.platform.startswith("linux") and hasattr(os, "setpriority")):
        return
    pool = ThreadPoolExecutor(1, thread_name_prefix="landing-state-writes")
    pool.submit(lambda: None).result()  # the thread starts now, at the current priority
    _state_writes.append(pool)
    me = threading.get_native_id()
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, me, os.getpriority(os.PRIO_PROCESS, me) + LANDING_NICE)


def _start_child(parent: int) -> None:
    """The landing process's initializer."""
    _follow_parent(parent)
    _lower_priority()


def _follow_parent(parent: int) -> None:
    """Exit when ``serve`` is gone (a SIGKILL leaves no one to shut the pool down, and the
    pool's pipe never reports it)."""

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
    (in-memory SQLite) is landed on a thread instead, its writes on ``run_with_writers``
    (the outbox's writer thread)."""

    def __init__(self, engine: Engine, run_with_writers=None) -> None:
        self.engine = engine
        self.run_with_writers = run_with_writers or (lambda fn: fn())
        self.url = engine.url.render_as_string(hide_password=False)  # never logged
        self.own_process = not _in_memory(engine)
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        if self.own_process and self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                1, mp_context=context, initializer=_start_child, initargs=(os.getpid(),)
            )
            self._pool.submit(_warm)  # its imports before the first landing, not during

    async def cycle(self, root: Path, max_events: int, take_over_all: bool) -> Cycle:
        """``land_cycle`` in the landing process (or on a thread, see the class)."""
        if not self.own_process:
            return await asyncio.to_thread(self._cycle_here, root, max_events, take_over_all)
        return await self._in_pool(_cycle_in_process, str(root), max_events, take_over_all)

    async def forget(self, older_than: float) -> int:
        if not self.own_process:
            ledger = CurrentsLedger(self.engine)
            return await asyncio.to_thread(self.run_with_writers, lambda: ledger.forget(older_than))
        return await self._in_pool(_forget_in_process, older_than)

    async def _in_pool(self, fn, *args):
        self.start()
        assert self._pool is not None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, self.url, *args)
        except BrokenProcessPool:
            self.close()  # the next landing starts a new process and writes it again
            raise

    def _cycle_here(self, root: Path, max_events: int, take_over_all: bool) -> Cycle:
        from headwater.exports.currents_landing import landing_database

        db = landing_database()
        try:
            ledger = CurrentsLedger(self.engine)
            return land_cycle(ledger, root, db, max_events, take_over_all, self.run_with_writers)
        finally:
            db.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
