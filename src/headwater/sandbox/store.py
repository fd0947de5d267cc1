"""The sandbox's persistence: SQLite (WAL) on disk or in memory; the only SQL here.

Profiles are kept as JSON documents, loaded into memory at start and written through on
every request inside one transaction, committed before the answer goes out: the sandbox
answers as fast as Braze's own ingestion while surviving restarts.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from pathlib import Path

import orjson

CACHE_KIB = 128 * 1024  # page cache: the hot part of the users B-tree stays in memory
WAL_CHECKPOINT_PAGES = 20_000  # checkpoint (and fsync) every ~80 MB of WAL, not every 4 MB
# Counters (data points, requests) are an inspection aid: they are added up in memory and
# written at most this often, in the same transaction as a request's users. A crash loses
# at most this much counting; users and events are always committed before the answer.
COUNTER_FLUSH_SECONDS = 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (braze_id TEXT PRIMARY KEY, doc BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activity (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    braze_id TEXT NOT NULL,
    kind TEXT NOT NULL,            -- event | purchase
    payload BLOB NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_user ON activity (braze_id, id);
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    permissions TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS counters (scope TEXT NOT NULL, name TEXT NOT NULL,
    value INTEGER NOT NULL, PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS segments (id TEXT PRIMARY KEY, doc BLOB NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sends (id INTEGER PRIMARY KEY AUTOINCREMENT, doc BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS catalog (kind TEXT NOT NULL, id TEXT NOT NULL, doc BLOB NOT NULL,
    created_at TEXT NOT NULL, PRIMARY KEY (kind, id));  -- campaigns and canvases
"""


class Store:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=10000")
        self.conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self.conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        self._pending_counters: Counter[tuple[str, str]] = Counter()
        self._counters_flushed = time.monotonic()
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.flush_counters()
        self.conn.close()

    # -- users ------------------------------------------------------------------------

    def load_users(self) -> list[dict]:
        return [orjson.loads(doc) for (doc,) in self.conn.execute("SELECT doc FROM users")]

    def write(
        self,
        users: list[dict],
        deleted: list[str] = (),
        activity: list[tuple[str, str, bytes, str]] = (),
        counters: list[tuple[str, str, int]] = (),
        moved: list[tuple[str, str]] = (),
    ) -> None:
        """One request's changes, in one transaction: nothing is answered before this
        returns, so a 2xx always means the change is on disk."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            if moved:  # identify/merge: the source's events now belong to the target
                conn.executemany(
                    "UPDATE activity SET braze_id = ? WHERE braze_id = ?",
                    [(target, source) for source, target in moved],
                )
            if users:
                conn.executemany(
                    "INSERT INTO users (braze_id, doc) VALUES (?, ?) "
                    "ON CONFLICT (braze_id) DO UPDATE SET doc = excluded.doc",
                    [(u["braze_id"], orjson.dumps(u)) for u in users],
                )
            if deleted:
                conn.executemany("DELETE FROM users WHERE braze_id = ?", [(b,) for b in deleted])
                conn.executemany("DELETE FROM activity WHERE braze_id = ?", [(b,) for b in deleted])
            if activity:
                conn.executemany(
                    "INSERT INTO activity (braze_id, kind, payload, received_at) VALUES (?, ?, ?, ?)",
                    activity,
                )
            for scope, name, value in counters:
                self._pending_counters[(scope, name)] += value
            if time.monotonic() - self._counters_flushed >= COUNTER_FLUSH_SECONDS:
                self._write_counters()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def activity_of(self, braze_id: str, limit: int = 1000) -> list[dict]:
        rows = self.conn.execute(
            "SELECT kind, payload, received_at FROM activity WHERE braze_id = ? ORDER BY id LIMIT ?",
            (braze_id, limit),
        )
        return [
            {"kind": kind, "received_at": at, **orjson.loads(payload)} for kind, payload, at in rows
        ]

    def count_activity(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT kind, count(*) FROM activity GROUP BY kind"))

    # -- counters -----------------------------------------------------------------------

    def _write_counters(self) -> None:
        """Inside an open transaction: add the pending counter increments."""
        if self._pending_counters:
            self.conn.executemany(
                "INSERT INTO counters (scope, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT (scope, name) DO UPDATE SET value = value + excluded.value",
                [(scope, name, value) for (scope, name), value in self._pending_counters.items()],
            )
            self._pending_counters.clear()
        self._counters_flushed = time.monotonic()

    def flush_counters(self) -> None:
        self.conn.execute("BEGIN")
        self._write_counters()
        self.conn.execute("COMMIT")

    def counters(self) -> dict[str, dict[str, int]]:
        self.flush_counters()
        out: dict[str, dict[str, int]] = {}
        for scope, name, value in self.conn.execute("SELECT scope, name, value FROM counters"):
            out.setdefault(scope, {})[name] = value
        return out

    # -- keys -----------------------------------------------------------------------

    def api_keys(self) -> list[tuple[str, str, str, str, str | None]]:
        return list(
            self.conn.execute(
                "SELECT name, key_hash, permissions, created_at, revoked_at FROM api_keys "
                "ORDER BY created_at, name"
            )
        )

    def put_key(self, name: str, key_hash: str, permissions: str, created_at: str) -> None:
        self.conn.execute(
            "INSERT INTO api_keys (name, key_hash, permissions, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET key_hash = excluded.key_hash, "
            "permissions = excluded.permissions, created_at = excluded.created_at, revoked_at = NULL",
            (name, key_hash, permissions, created_at),
        )

    def revoke_key(self, name: str, at: str) -> bool:
        cursor = self.conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (at, name)
        )
        return cursor.rowcount > 0

    # -- segments and sends -------------------------------------------------------------

    def segments(self) -> list[dict]:
        return [
            orjson.loads(d)
            for (d,) in self.conn.execute("SELECT doc FROM segments ORDER BY created_at, id")
        ]

    def put_segment(self, segment: dict, created_at: str) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO segments (id, doc, created_at) VALUES (?, ?, ?)",
            (segment["id"], orjson.dumps(segment), created_at),
        )

    def sends(self) -> list[dict]:
        return [orjson.loads(d) for (d,) in self.conn.execute("SELECT doc FROM sends ORDER BY id")]

    def add_send(self, send: dict, users: list[dict] = (), endpoint: str = "") -> None:
        """A recorded send and the profiles its ``attributes`` changed, in one transaction."""
        self.conn.execute("BEGIN")
        try:
            self.conn.execute("INSERT INTO sends (doc) VALUES (?)", (orjson.dumps(send),))
            if users:
                self.conn.executemany(
                    "INSERT INTO users (braze_id, doc) VALUES (?, ?) "
                    "ON CONFLICT (braze_id) DO UPDATE SET doc = excluded.doc",
                    [(u["braze_id"], orjson.dumps(u)) for u in users],
                )
            if endpoint:
                self._pending_counters[("requests", endpoint)] += 1
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def catalog(self, kind: str) -> list[dict]:
        """Declared campaigns or canvases, oldest first."""
        rows = self.conn.execute(
            "SELECT doc FROM catalog WHERE kind = ? ORDER BY created_at, id", (kind,)
        )
        return [orjson.loads(d) for (d,) in rows]

    def put_catalog(self, kind: str, item: dict, created_at: str) -> None:
        self.conn.execute(
            "INSERT INTO catalog (kind, id, doc, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc",
            (kind, item["id"], orjson.dumps(item), created_at),
        )

    # -- everything -----------------------------------------------------------------------

    def reset(self, keep_keys: bool = True) -> None:
        self._pending_counters.clear()
        tables = ["users", "activity", "counters", "segments", "sends", "catalog"]
        if not keep_keys:
            tables.append("api_keys")
        self.conn.execute("BEGIN")
        for table in tables:
            self.conn.execute(f"DELETE FROM {table}")
        self.conn.execute("COMMIT")
