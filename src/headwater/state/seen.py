"""Which events were already accepted within the duplicate window (a partner event id or a
content hash, 16 bytes each), so a retried or re-posted event is enqueued once.

On PostgreSQL every key is upserted into ``outbox_seen_events`` inside the intake
transaction, which keeps several ``serve`` processes honest with each other.

On SQLite the window's keys live in this process's memory (120-150 bytes each: a million
events a day hold 120-150 MB) and are appended to ``outbox_seen_keys``, a log in commit
order, inside the intake transaction: a commit adds rows at the end of one B-tree (a page
or two), and a restart reads the log back (~1.6 s per million keys), so nothing is
forgotten. Keys past the window leave memory and the log's oldest stretch is deleted, a
bounded number per transaction.
A keyed table on disk was tried first: keys are hashes, so every key lands on its own page,
and folding a second's keys into a table of a few hundred thousand cost ~130 ms of CPU
(~400 ms at two million), growing with the window; that was the gateway's p99.
A second ``serve`` on the same SQLite file would not see this one's keys, so it is refused
at start (``headwater.state.serve_lock``): use PostgreSQL for several processes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator

from sqlalchemy import BigInteger, Column, Float, LargeBinary, Table, text

from headwater.chunks import chunks
from headwater.state.db import metadata

log = logging.getLogger("headwater.outbox")

KEYS_PER_STATEMENT = 500
PRUNE_KEYS = 5_000  # log rows deleted per transaction (a few ms of the write lock)
PRUNE_SECONDS = 600.0  # PostgreSQL: how often keys past the window are deleted
EXPIRE_SECONDS = 1.0  # SQLite: how often keys past the window leave memory and the log
WARN_KEYS = 5_000_000  # SQLite: say so when memory holds this many keys (and each doubling)
BYTES_PER_KEY = 150  # what a key in memory costs, at most (measured: 120-150)

seen_events = Table(
    "outbox_seen_events",
    metadata,
    Column("key", LargeBinary(32), primary_key=True),  # a 16-byte digest
    Column("seen_at", Float, nullable=False),
    info={"dialects": {"postgresql"}},
)

seen_keys = Table(
    "outbox_seen_keys",
    metadata,
    Column("id", BigInteger, primary_key=True),  # the commit's number, in time order
    Column("key", LargeBinary(32), primary_key=True),
    Column("seen_at", Float, nullable=False),
    sqlite_with_rowid=False,  # clustered by commit: appends at the end, prunes from the start
    info={"dialects": {"sqlite"}},
)

KEY_BYTES = 16
PRUNE_RANGES = 16  # PostgreSQL prunes a key range (by first byte) per transaction
RANGE_SHIFT = 4  # first byte >> 4: the key's range
_NEVER = float("-inf")


def normalise_key(key: bytes) -> bytes:
    """Keys are 16-byte digests (what the streams and the gateway make); anything else is
    hashed to one, so every key costs the same in memory and spreads over key ranges."""
    if len(key) == KEY_BYTES:
        return key
    return hashlib.blake2b(key, digest_size=KEY_BYTES).digest()


# One piece of upkeep, run on the outbox's writer thread in turn with intake commits (it
# may change what a commit's duplicate check sees).
Step = Callable[[], None]


class SeenKeys:
    """The duplicate check the outbox's writer runs inside each group commit."""

    def __init__(
        self, engine, window_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.dialect = engine.dialect.name
        self.window_seconds = window_seconds
        # SQLite: every key in the window with its newest sighting, and the commits that
        # logged them, oldest first (commit number, time, keys), for expiry in order.
        self.known: dict[bytes, float] = {}
        self.commits: deque[tuple[int, float, list[bytes]]] = deque()
        self._last_prune = self.clock()
        self._commit_number = 0
        self._warn_at = WARN_KEYS
        if self.dialect != "postgresql":
            self._load_log()
            self._report_size()

    def _load_log(self) -> None:
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, key, seen_at FROM outbox_seen_keys ORDER BY id")
            keys: list[bytes] = []
            for commit, key, seen_at in rows:  # in commit order: a later sighting wins
                if not self.commits or self.commits[-1][0] != commit:
                    keys = []
                    self.commits.append((commit, seen_at, keys))
                # One time object per commit, as at intake: a float per key is 24 bytes.
                self.known[key] = self.commits[-1][1]
                keys.append(key)
        self._commit_number = self.commits[-1][0] if self.commits else 0

    # ---- inside the intake transaction -------------------------------------------------

    def claim(self, conn, keys: set[bytes], now: float) -> set[bytes]:
        """Record ``keys`` as seen at ``now``; return those not seen within the window.
        Call ``remember`` with the result once the transaction has committed."""
        if self.dialect == "postgresql":
            return self._upsert(conn, keys, now)
        cutoff = now - self.window_seconds
        known = self.known
        fresh = {key for key in keys if known.get(key, _NEVER) < cutoff}
        self._commit_number += 1
        for chunk in chunks(list(fresh), KEYS_PER_STATEMENT):
            # Many rows per statement: each statement step hands the GIL to the event loop
            # and back, and a step per key made a commit wait for hundreds of hand-backs.
            params: list = []
            for key in chunk:
                params += (self._commit_number, key, now)
            # OR REPLACE: a second process sharing the file may log under the same number.
            conn.exec_driver_sql(
                "INSERT OR REPLACE INTO outbox_seen_keys (id, key, seen_at) VALUES "
                + ", ".join(["(?, ?, ?)"] * len(chunk)),
                tuple(params),
            )
        return fresh

    def remember(self, fresh: set[bytes], now: float) -> None:
        """The keys ``claim`` returned, once their transaction committed."""
        if self.dialect != "postgresql" and fresh:
            for key in fresh:
                self.known[key] = now
            self.commits.append((self._commit_number, now, list(fresh)))
            self._report_size()

    def _report_size(self) -> None:
        """Warn when memory passes ``WARN_KEYS`` keys, and again at each doubling."""
        if len(self.known) < self._warn_at:
            return
        while self._warn_at <= len(self.known):
            self._warn_at *= 2
        log.warning(
            "the duplicate window holds %d event keys in memory (~%d MB); for this volume "
            "use PostgreSQL state or a shorter gateway.duplicate_window_hours",
            len(self.known), len(self.known) * BYTES_PER_KEY // 1_000_000,
        )  # fmt: skip

    def _upsert(self, conn, keys: set[bytes], now: float) -> set[bytes]:
        """One upsert of all the keys (an array parameter), returning those inserted, or
        updated because their last sighting had left the window. In key order, so two
        processes taking the same keys lock them in the same order (no deadlock); and the
        statement's text never changes, so the driver prepares it once (a VALUES list per
        chunk was parsed and planned anew by the server on every commit)."""
        rows = conn.exec_driver_sql(
            "INSERT INTO outbox_seen_events (key, seen_at) "
            "SELECT key, %s FROM unnest(%s::bytea[]) AS key ORDER BY key "
            "ON CONFLICT (key) DO UPDATE SET seen_at = excluded.seen_at "
            "WHERE outbox_seen_events.seen_at < %s RETURNING key",
            (now, list(keys), now - self.window_seconds),
        )
        return {bytes(row[0]) for row in rows}

    # ---- upkeep, run by the outbox's writer between intake commits ---------------------

    def upkeep_due(self, now: float) -> bool:
        if self.dialect == "postgresql":
            return now - self._last_prune >= PRUNE_SECONDS
        if now - self._last_prune < EXPIRE_SECONDS:
            return False
        return bool(self.commits) and self.commits[0][1] < now - self.window_seconds

    def upkeep(self) -> Iterator[Step]:
        """Steps of one short transaction each, all on the writer thread, deleting keys
        past the window."""
        self._last_prune = self.clock()
        cutoff = self._last_prune - self.window_seconds
        if self.dialect == "postgresql":
            for part in range(PRUNE_RANGES):  # a key range per transaction
                yield functools.partial(self._prune_range, part, cutoff)
            return
        while self.commits and self.commits[0][1] < cutoff:
            yield functools.partial(self._expire, cutoff)

    def _expire(self, cutoff: float) -> None:
        """Forget the oldest commits' keys past the window (up to ``PRUNE_KEYS``) and
        delete their stretch of the log. Memory goes after the delete commits: a failed
        delete leaves both for the next try."""
        taken, last = 0, None
        for commit, seen_at, keys in self.commits:
            if seen_at >= cutoff or (taken and taken + len(keys) > PRUNE_KEYS):
                break
            taken, last = taken + len(keys), commit
        if last is None:
            return
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM outbox_seen_keys WHERE id <= :last"), {"last": last})
        known = self.known
        while self.commits and self.commits[0][0] <= last:
            _commit, seen_at, keys = self.commits.popleft()
            for key in keys:
                if known.get(key) == seen_at:  # not seen again since
                    del known[key]

    def _prune_range(self, part: int, cutoff: float) -> None:
        low = bytes([part << RANGE_SHIFT])
        above = "AND key < %s " if part + 1 < PRUNE_RANGES else ""
        params = (low, bytes([(part + 1) << RANGE_SHIFT])) if above else (low,)
        with self.engine.begin() as conn:
            conn.exec_driver_sql(
                f"DELETE FROM outbox_seen_events WHERE key >= %s {above}AND seen_at < %s",
                (*params, cutoff),
            )


__all__ = ["SeenKeys", "normalise_key", "seen_events", "seen_keys"]


def content_key(stream: str, kind: str, canonical: bytes) -> bytes:
    """Content-hash dedupe key for an object posted to the gateway's /users/track, from its
    sorted-keys JSON."""
    return hashlib.blake2b(_key_prefix(stream, kind) + canonical, digest_size=16).digest()


@functools.lru_cache(maxsize=1024)
def _key_prefix(stream: str, kind: str) -> bytes:
    return f"{stream}\x00{kind}\x00".encode()
