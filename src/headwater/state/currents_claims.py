"""Where the Currents landing claims event ids: a SQLite file of its own beside a SQLite
state store, the state store itself otherwise.

Why a file of its own: SQLite has one write lock per file, and ``serve``'s intake commits
wait for whoever holds it. A claim inserts random ids (UUIDs) into the ids' primary key,
so nearly every id dirties its own index page: measured under ``bench.currents``, the
claims held the state store's write lock 13 s out of 40 (27 ms per 1,000 ids, up to
180 ms), and the WAL they wrote (3-4 MB per claim) made the state store's restart
checkpoints, which lock writers out too, take up to 300 ms. In a file of their own the
claims queue only behind each other (one landing process writes them).

Two files do not commit together, so the landing orders its writes instead (see
``CurrentsLedger``): a landing is named in the state store and that naming is made durable
(``sync_wal``) before any of its ids is claimed; the claims are made durable (this file
is ``synchronous=FULL``) before any of its files is written; its batches leave the state
store only after its files are in place. A crash at any point, power loss included, leaves
either the landing named with some or all of its claims made (claimed again, first claim
wins, so the same ids are owned and the same files written again), or the landing
finished. PostgreSQL and in-memory stores keep the claims in the state store: one
transaction there never waits on another's write lock that way.
"""

from __future__ import annotations

import os
import threading

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    MetaData,
    String,
    Table,
    create_engine,
    event,
)

from headwater.state.db import metadata

MAX_EVENT_ID = 200  # characters; Braze's ids are UUIDs
CACHE_KIB = 131_072  # the claims file's page cache: the ids' index, random pages
MOVE_ROWS = 5_000  # claims moved per step from a state store that held them before


def _landed_table(meta: MetaData) -> Table:
    table = Table(
        "currents_landed",
        meta,
        Column("receiver", String(64), primary_key=True),
        Column("event_id", String(MAX_EVENT_ID), primary_key=True),
        Column("seq", BigInteger, nullable=False),
        Column("landed_at", Float, nullable=False),
    )
    Index("ix_currents_landed_seq", table.c.seq)
    Index("ix_currents_landed_at", table.c.landed_at)
    return table


# In the state store (PostgreSQL, in-memory SQLite; on a SQLite file, only claims made
# before they moved to their own file, moved out when that file is first opened).
currents_landed = _landed_table(metadata)
_claims_metadata = MetaData()
claims_file_table = _landed_table(_claims_metadata)  # the same table, in the claims file

_engines: dict[str, Engine] = {}
_guard = threading.Lock()


def claims_path(state: Engine) -> str | None:
    """The claims file of a SQLite file store (``<database>-currents-landed``), else None."""
    if state.dialect.name != "sqlite":
        return None
    database = state.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.abspath(database) + "-currents-landed"


def claims_store(state: Engine) -> Engine:
    """The engine claims are made on: the claims file's (opened once per process, created
    and filled with any claims the state store held if new), or ``state`` itself."""
    path = claims_path(state)
    if path is None:
        return state
    with _guard:
        engine = _engines.get(path)
        if engine is None:
            engine = _open_claims(path)
            _move_old_claims(state, engine)
            _engines[path] = engine
        return engine


def claims_table(state: Engine) -> Table:
    """The ``currents_landed`` table claims are made in, for ``state``."""
    return claims_file_table if claims_path(state) else currents_landed


def _claims_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # durable before the landing's files
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
    cursor.close()


def _open_claims(path: str) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}", connect_args={"check_same_thread": False, "timeout": 30}
    )
    event.listen(engine, "connect", _claims_pragmas)
    _claims_metadata.create_all(engine)
    return engine


def _move_old_claims(state: Engine, claims: Engine) -> None:
    """Claims a state store made before they had their own file, moved there a step at a
    time in the table's row order, each step copied before it is deleted (a crash in
    between copies it again: a claim already there is kept)."""
    from headwater.state.writer_lock import writer_lock

    writers = writer_lock(state)
    while True:
        with state.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT rowid, receiver, event_id, seq, landed_at FROM currents_landed "
                f"ORDER BY rowid LIMIT {MOVE_ROWS}"
            ).all()
        if not rows:
            return
        with claims.begin() as conn:
            conn.exec_driver_sql(
                "INSERT OR IGNORE INTO currents_landed (receiver, event_id, seq, landed_at) "
                "VALUES (?, ?, ?, ?)",
                [tuple(r[1:]) for r in rows],
            )

        def drop(last=rows[-1][0]) -> None:
            with state.begin() as conn:
                conn.exec_driver_sql("DELETE FROM currents_landed WHERE rowid <= ?", (last,))

        writers.run(drop) if writers else drop()


def sync_wal(state: Engine) -> None:
    """Make every transaction committed so far in a SQLite file store durable (``fsync``
    of its WAL: ``synchronous=NORMAL`` leaves that to the next checkpoint, which syncs the
    log before copying it, so frames a checkpoint already took are synced too)."""
    path = claims_path(state)
    if path is None:
        return
    wal = os.path.abspath(state.url.database) + "-wal"
    try:
        fd = os.open(wal, os.O_RDONLY)
    except FileNotFoundError:  # no log: everything is in the database file, synced
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def dispose_claims(state: Engine) -> None:
    """Close this process's connections to ``state``'s claims file (tests, shutdown)."""
    path = claims_path(state)
    with _guard:
        engine = _engines.pop(path, None) if path else None
    if engine is not None:
        engine.dispose()
