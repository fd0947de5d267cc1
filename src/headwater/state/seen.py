"""Which events were already accepted within the duplicate window (a partner event id or a
content hash, 16 bytes each), so a retried or re-posted event is enqueued once.

On PostgreSQL every key is upserted into ``outbox_seen_events`` inside the intake
transaction, which keeps several ``serve`` processes honest with each other.

On SQLite that upsert was the gateway's bottleneck: keys are hashes, so every key lands on
its own B-tree page and every commit wrote one 4 KB page per event. Here SQLite keys are
appended to ``outbox_seen_log`` instead (new rows at the end of the table: a commit
touches a page or two), this process keeps them in memory, and a compaction folds the log
into the keyed table in SQL, one key range per transaction with intake commits in between
(each page of the keyed table written once for many keys). A lookup checks memory first,
then the keyed table. The log is read back at start-up, so a restart forgets nothing.
Another process sharing the SQLite file sees this process's keys once they are compacted
(within ``COMPACT_SECONDS``): use PostgreSQL for several processes.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterator

from sqlalchemy import BigInteger, Column, Float, Integer, LargeBinary, Table, text

from headwater.chunks import chunks
from headwater.state.db import metadata

KEYS_PER_STATEMENT = 500
# Compact once this many keys wait in the log. Small and often measured best for the
# gateway's p99 (bench.gateway: 20k beat 10k, 50k and 200k): a compaction's steps are short
# and its pages are still in memory; the price is rewriting more of the keyed table.
COMPACT_KEYS = 20_000
COMPACT_SECONDS = 30.0  # ...or once the oldest has waited this long
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
    Column("part", Integer, primary_key=True),  # the key range the key falls in
    Column("id", BigInteger, primary_key=True),  # the commit's number in this process
    Column("key", LargeBinary(32), primary_key=True),
    Column("seen_at", Float, nullable=False),
    # Clustered by range, then commit: a commit appends at the end of each range (a few
    # pages), and a compaction step reads and deletes one contiguous stretch.
    sqlite_with_rowid=False,
)

KEY_BYTES = 16
COMPACT_RANGES = 16  # key ranges (by first byte) folded one transaction at a time
PART_SHIFT = 4  # first byte >> 4: the key's range


def normalise_key(key: bytes) -> bytes:
    """Keys are 16-byte digests (what the streams and the gateway make); anything else is
    hashed to one, so every key spreads evenly over the compaction's key ranges."""
    if len(key) == KEY_BYTES:
        return key
    return hashlib.blake2b(key, digest_size=KEY_BYTES).digest()


# One piece of upkeep, run on the outbox's writer thread in turn with intake commits (it
# may change what a commit's duplicate check sees).
Step = Callable[[], None]


class SeenKeys:
    """The duplicate check the outbox's writer runs inside each group commit."""

    def __init__(self, engine, window_seconds: float) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.window_seconds = window_seconds
        # SQLite: keys in the log, newest sighting. ``compacting`` holds those a running
        # compaction is folding; it is dropped whole when the compaction ends.
        self.recent: dict[bytes, float] = {}
        self.compacting: dict[bytes, float] = {}
        self._recent_since: float | None = None
        self._last_prune = time.time()
        self._mark = "%s" if self.dialect == "postgresql" else "?"
        self._commit_number = 0
        if self.dialect != "postgresql":
            with engine.connect() as conn:
                for key, seen_at in conn.execute(text("SELECT key, seen_at FROM outbox_seen_log")):
                    self._note(bytes(key), seen_at)
                last = conn.execute(text("SELECT MAX(id) FROM outbox_seen_log")).scalar()
                self._commit_number = last or 0

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
            seen_at = self.recent.get(key) or self.compacting.get(key)
            if seen_at is None:
                unknown.append(key)
            elif seen_at < cutoff:
                fresh.add(key)  # the newest sighting is too old, so any older one is too
        if unknown:
            fresh.update(unknown)
            fresh.difference_update(self._stored_since(conn, unknown, cutoff))
        self._commit_number += 1
        for chunk in chunks(list(fresh), KEYS_PER_STATEMENT):
            # Many rows per statement: each statement step hands the GIL to the event loop
            # and back, and a step per key made a commit wait for hundreds of hand-backs.
            params: list = []
            for key in chunk:
                params += (key[0] >> PART_SHIFT, self._commit_number, key, now)
            # OR REPLACE: another process sharing the file may log the same key under the
            # same commit number; the newer sighting wins.
            conn.exec_driver_sql(
                "INSERT OR REPLACE INTO outbox_seen_log (part, id, key, seen_at) VALUES "
                + ", ".join(["(?, ?, ?, ?)"] * len(chunk)),
                tuple(params),
            )
        return fresh

    def remember(self, fresh: set[bytes], now: float) -> None:
        if self.dialect != "postgresql":
            for key in fresh:
                self._note(key, now)

    def _note(self, key: bytes, seen_at: float) -> None:
        if self.recent.get(key, 0.0) < seen_at:
            self.recent[key] = seen_at
        if self._recent_since is None or seen_at < self._recent_since:
            self._recent_since = seen_at

    def _stored_since(self, conn, keys: list[bytes], cutoff: float) -> set[bytes]:
        found: set[bytes] = set()
        for chunk in chunks(keys, KEYS_PER_STATEMENT):
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
        fresh: set[bytes] = set()
        for chunk in chunks(list(keys), KEYS_PER_STATEMENT):
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
        if self._recent_since is None:
            return False
        return len(self.recent) >= COMPACT_KEYS or now - self._recent_since >= COMPACT_SECONDS

    def upkeep(self) -> Iterator[Step]:
        """Steps of one short transaction each, all on the writer thread: fold the log
        into the keyed table a key range at a time, drop the folded log rows, delete keys
        past the window."""
        if self.dialect != "postgresql" and self._recent_since is not None:
            yield from self._compaction()
        if time.time() - self._last_prune >= PRUNE_SECONDS:
            self._last_prune = time.time()
            cutoff = self._last_prune - self.window_seconds
            for part in range(COMPACT_RANGES):  # a key range per transaction, as above
                yield functools.partial(self._prune, part, cutoff)

    def _compaction(self) -> Iterator[Step]:
        upto: list[int] = []

        def start() -> None:
            # What the log holds up to this commit; keys logged from now on start a new set.
            upto.append(self._commit_number)
            # A compaction that failed part-way left its keys here: they stay until folded.
            self.compacting = {**self.compacting, **self.recent}
            self.recent = {}
            self._recent_since = None

        yield start
        for part in range(COMPACT_RANGES):
            yield functools.partial(self._fold, upto, part)

        def finish() -> None:
            self.compacting = {}

        yield finish

    def _fold(self, upto: list[int], part: int) -> None:
        """One key range of the log into the keyed table, in key order, newest wins; the
        folded stretch of the log goes in the same transaction."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO outbox_seen_events (key, seen_at) "
                "SELECT key, MAX(seen_at) FROM outbox_seen_log "
                "WHERE part = ? AND id <= ? GROUP BY key ORDER BY key "
                "ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at "
                "WHERE excluded.seen_at > outbox_seen_events.seen_at",
                (part, upto[0]),
            )
            conn.exec_driver_sql(
                "DELETE FROM outbox_seen_log WHERE part = ? AND id <= ?", (part, upto[0])
            )

    def _prune(self, part: int, cutoff: float) -> None:
        low = bytes([part << PART_SHIFT])
        above = f"AND key < {self._mark} " if part + 1 < COMPACT_RANGES else ""
        params = (low, bytes([(part + 1) << PART_SHIFT])) if above else (low,)
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"DELETE FROM outbox_seen_events WHERE key >= {self._mark} {above}"
                f"AND seen_at < {self._mark}",
                (*params, cutoff),
            )


__all__ = ["SeenKeys", "normalise_key", "seen_events", "seen_log"]
