"""Which events were already accepted within the duplicate window (a partner event id or a
content hash, 16 bytes each), so a retried or re-posted event is enqueued once.

On PostgreSQL every key is upserted into ``outbox_seen_events`` inside the intake
transaction, which keeps several ``serve`` processes honest with each other.

On SQLite that upsert was the gateway's bottleneck: keys are hashes, so every key lands on
its own B-tree page and every commit wrote one 4 KB page per event. Here SQLite keys go to
``outbox_seen_log`` instead (appended in key order of arrival, so a commit touches a page
or two), this process keeps them in memory, and a compaction folds the log into the keyed
table in sorted chunks (each page written once for many keys) between intake commits. A
lookup checks memory first, then the keyed table. The log is read back at start-up, so a
restart forgets nothing. Another process sharing the SQLite file sees this process's keys
once they are compacted (within ``COMPACT_SECONDS``): use PostgreSQL for several processes.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

from sqlalchemy import Column, Float, Integer, LargeBinary, Table, text

from headwater.state.db import metadata

KEYS_PER_STATEMENT = 500
COMPACT_KEYS = 100_000  # compact once this many keys wait in the log...
COMPACT_SECONDS = 30.0  # ...or once the oldest has waited this long
COMPACT_CHUNK = 10_000  # keys per compaction transaction (intake commits run in between)
PRUNE_SECONDS = 600.0  # how often keys past the window are deleted

seen_events = Table(
    "outbox_seen_events",
    metadata,
    Column("key", LargeBinary(32), primary_key=True),  # a 16-byte digest
    Column("seen_at", Float, nullable=False),
    sqlite_with_rowid=False,  # the key is the row: one B-tree write per key, not two
)

seen_log = Table(
    "outbox_seen_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digests", LargeBinary, nullable=False),  # the 16-byte keys of one commit, joined
    Column("seen_at", Float, nullable=False),
)

KEY_BYTES = 16


def normalise_key(key: bytes) -> bytes:
    """Keys are 16-byte digests (what the streams and the gateway make); anything else is
    hashed to one, so the log can store a commit's keys as one row."""
    if len(key) == KEY_BYTES:
        return key
    return hashlib.blake2b(key, digest_size=KEY_BYTES).digest()


def _split(blob: bytes) -> list[bytes]:
    blob = bytes(blob)
    return [blob[i : i + KEY_BYTES] for i in range(0, len(blob), KEY_BYTES)]


class Step(NamedTuple):
    """One piece of upkeep: ``writes`` steps must run on the outbox's writer thread (in
    turn with intake commits); the others only read and may run anywhere."""

    run: Callable[[], None]
    writes: bool = True


class SeenKeys:
    """The duplicate check the outbox's writer runs inside each group commit."""

    def __init__(self, engine, window_seconds: float) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.window_seconds = window_seconds
        self.recent: dict[bytes, float] = {}  # SQLite: keys in the log, newest sighting
        self._oldest_pending: float | None = None
        self._last_prune = time.time()
        self._mark = "%s" if self.dialect == "postgresql" else "?"
        if self.dialect != "postgresql":
            with engine.connect() as conn:
                for blob, seen_at in conn.execute(
                    text("SELECT digests, seen_at FROM outbox_seen_log")
                ):
                    for key in _split(blob):
                        self._note(key, seen_at)

    # ---- inside the intake transaction -------------------------------------------------

    def claim(self, conn, keys: set[bytes], now: float) -> set[bytes]:
        """Record ``keys`` as seen at ``now``; return those not seen within the window.
        Call ``remember`` with the result once the transaction has committed."""
        if self.dialect == "postgresql":
            return self._upsert(conn, keys, now)
        cutoff = now - self.window_seconds
        unknown = []
        fresh = set()
        for key in keys:
            seen_at = self.recent.get(key)
            if seen_at is None:
                unknown.append(key)
            elif seen_at < cutoff:
                fresh.add(key)  # the newest sighting is too old, so any older one is too
        if unknown:
            fresh.update(unknown)
            fresh.difference_update(self._stored_since(conn, unknown, cutoff))
        if fresh:
            # One row per commit: every statement step hands the GIL to the event loop and
            # back, and a row per key made a commit wait for hundreds of hand-backs.
            conn.exec_driver_sql(
                "INSERT INTO outbox_seen_log (digests, seen_at) VALUES (?, ?)",
                (b"".join(fresh), now),
            )
        return fresh

    def remember(self, fresh: set[bytes], now: float) -> None:
        if self.dialect != "postgresql":
            for key in fresh:
                self._note(key, now)

    def _note(self, key: bytes, seen_at: float) -> None:
        if self.recent.get(key, 0.0) < seen_at:
            self.recent[key] = seen_at
        if self._oldest_pending is None or seen_at < self._oldest_pending:
            self._oldest_pending = seen_at

    def _stored_since(self, conn, keys: list[bytes], cutoff: float) -> set[bytes]:
        found: set[bytes] = set()
        for start in range(0, len(keys), KEYS_PER_STATEMENT):
            chunk = keys[start : start + KEYS_PER_STATEMENT]
            marks = ", ".join([self._mark] * len(chunk))
            rows = conn.exec_driver_sql(
                f"SELECT key FROM outbox_seen_events WHERE key IN ({marks}) "
                f"AND seen_at >= {self._mark}",
                (*chunk, cutoff),
            )
            found.update(bytes(row[0]) for row in rows)
        return found

    def _upsert(self, conn, keys: set[bytes], now: float) -> set[bytes]:
        """One multi-row upsert with RETURNING per chunk: the keys inserted, or updated
        because their last sighting had left the window."""
        mark = self._mark
        ordered = list(keys)
        fresh: set[bytes] = set()
        for start in range(0, len(ordered), KEYS_PER_STATEMENT):
            chunk = ordered[start : start + KEYS_PER_STATEMENT]
            values = ", ".join([f"({mark}, {mark})"] * len(chunk))
            sql = (
                f"INSERT INTO outbox_seen_events (key, seen_at) VALUES {values} "
                "ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at "
                f"WHERE outbox_seen_events.seen_at < {mark} RETURNING key"
            )
            params: list = []
            for key in chunk:
                params += (key, now)
            params.append(now - self.window_seconds)
            fresh.update(bytes(row[0]) for row in conn.exec_driver_sql(sql, tuple(params)))
        return fresh

    # ---- upkeep, run by the outbox's writer between intake commits ---------------------

    def upkeep_due(self, now: float) -> bool:
        if now - self._last_prune >= PRUNE_SECONDS:
            return True
        if self._oldest_pending is None:
            return False
        return len(self.recent) >= COMPACT_KEYS or now - self._oldest_pending >= COMPACT_SECONDS

    def upkeep(self) -> Iterator[Step]:
        """Steps of one short transaction each: fold the log into the keyed table in
        sorted chunks, drop the folded log rows, delete keys past the window."""
        if self.dialect != "postgresql" and self._oldest_pending is not None:
            yield from self._compaction()
        if time.time() - self._last_prune >= PRUNE_SECONDS:
            yield Step(self._prune)

    def _compaction(self) -> Iterator[Step]:
        state: dict = {}

        def read() -> None:
            with self.engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT id, digests, seen_at FROM outbox_seen_log ORDER BY id"
                ).all()
            items = [(key, seen_at) for _id, blob, seen_at in rows for key in _split(blob)]
            items.sort()  # a key logged twice: the later sighting comes last and wins
            state["upto"] = rows[-1][0] if rows else 0
            state["items"] = items

        yield Step(read, writes=False)
        # The caller runs each step before asking for the next, so ``items`` is read by now.
        for start in range(0, len(state["items"]), COMPACT_CHUNK):
            chunk = state["items"][start : start + COMPACT_CHUNK]
            yield Step(functools.partial(self._merge, chunk))

        def finish() -> None:
            with self.engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM outbox_seen_log WHERE id <= ?", (state["upto"],))
            for key, seen_at in state["items"]:
                if self.recent.get(key) == seen_at:  # not seen again since the read
                    del self.recent[key]
            self._oldest_pending = min(self.recent.values(), default=None)

        yield Step(finish)

    def _merge(self, chunk: list[tuple[bytes, float]]) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO outbox_seen_events (key, seen_at) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at "
                "WHERE excluded.seen_at > outbox_seen_events.seen_at",
                chunk,
            )

    def _prune(self) -> None:
        self._last_prune = time.time()
        cutoff = self._last_prune - self.window_seconds
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"DELETE FROM outbox_seen_events WHERE seen_at < {self._mark}", (cutoff,)
            )


__all__ = ["SeenKeys", "normalise_key", "seen_events", "seen_log"]
