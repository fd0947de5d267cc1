"""The durable outbox between intake (gateway, webhooks) and delivery.

Intake answers 2xx only after its objects are committed here. Commits are grouped: every
request waiting while one transaction runs joins the next one, so a burst of concurrent
requests costs one fsync instead of hundreds, and no request is answered before its own
commit.

A row holds up to 75 Braze objects of one kind for one stream and destination, one JSON
document per line (compact JSON never holds a raw newline): the objects of every request
in a group commit are packed together, and delivery can split a row back into objects and
send them without decoding them. Writing, leasing and deleting one row per object made the
state store the gateway's bottleneck (a full post cost 75 inserts, 75 lease updates and 75
deletes); a row per batch costs one of each. Delivery still settles every object on its
own: a row whose objects partly failed is rewritten with just those objects.

Claiming is a lease: ``lease_until`` marks rows as taken by one worker. On PostgreSQL the
claim uses ``FOR UPDATE SKIP LOCKED`` so several ``serve`` processes share the outbox
without waiting on each other; on SQLite (one writer at a time anyway) the lease alone does
it. A worker that dies leaves its lease to expire and another worker picks the rows up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from headwater.chunks import chunks
from headwater.state import pauses
from headwater.state.db import metadata
from headwater.state.seen import SeenKeys, normalise_key
from headwater.state.writer_lock import writer_lock

log = logging.getLogger("headwater.outbox")

DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_SEEN_WINDOW_SECONDS = 24 * 3600.0  # how long a re-posted event counts as a duplicate

# Option bits stored with each row, read by the delivery worker.
OPT_DEDUPE_ATTRIBUTES = 1
OPT_RESOLVE_EMAIL = 2

OBJECTS_PER_ROW = 75  # one Braze request's worth of one kind
IDS_PER_STATEMENT = 500
_ID = BigInteger().with_variant(Integer, "sqlite")

outbox = Table(
    "outbox",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("stream", String(200), nullable=False),
    Column("destination", String(200), nullable=False),
    Column("kind", String(16), nullable=False),  # attributes | events | purchases
    Column("payload", LargeBinary, nullable=False),  # the Braze objects, one compact JSON per line
    Column("objects", Integer, nullable=False),  # how many objects the row holds
    Column("options", Integer, nullable=False, default=0),
    Column("enqueued_at", Float, nullable=False),
    Column("available_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    # Ids follow posting order for good: dedupe compares them to tell an older value
    # retried late from a newer one, and SQLite would otherwise hand a drained outbox's
    # ids out again (``headwater.state.db`` rebuilds a store made without this).
    sqlite_autoincrement=True,
)
Index("ix_outbox_claim", outbox.c.destination, outbox.c.available_at)
# Holding and releasing a paused stream's rows (``headwater.state.pauses``).
Index("ix_outbox_stream", outbox.c.stream, outbox.c.available_at)
PAUSES_READ_SECONDS = 1.0  # how stale a process's view of the paused streams may be


@dataclass(slots=True)
class OutboxEntry:
    """One Braze object on its way to a destination (``payload``: its compact JSON)."""

    stream: str
    destination: str
    kind: str
    payload: bytes
    options: int = 0
    dedupe_key: bytes | None = None  # same key within the window -> enqueued once


@dataclass(slots=True)
class OutboxRow:
    """A leased row: ``payload`` holds ``objects`` Braze objects, one JSON per line."""

    id: int
    stream: str
    destination: str
    kind: str
    payload: bytes
    objects: int
    options: int
    attempts: int
    enqueued_at: float

    def lines(self) -> list[bytes]:
        """Each object's JSON, as enqueued."""
        return self.payload.split(b"\n")

    def decode(self) -> list[dict]:
        return [orjson.loads(line) for line in self.lines()]


@dataclass(slots=True)
class Retry:
    """A leased row going back for a later try: why, when, and (when only some of its
    objects failed) the objects left to send."""

    error: str
    delay: float
    remaining: list[bytes] | None = None  # the objects' JSON; None: the whole row
    counted: bool = True  # False: handed back unsent at shutdown, not a failed attempt


@dataclass
class _Pending:
    entries: Sequence[OutboxEntry]
    extra: Sequence[tuple[Table, list[dict], Sequence[str]]]
    future: asyncio.Future = field(repr=False)


def _upsert(dialect: str, table: Table, index_elements: Sequence[str]):
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in index_elements}
    return stmt.on_conflict_do_update(index_elements=list(index_elements), set_=updates)


class Outbox:
    """Group-committing writer plus the claim/ack/release calls delivery needs."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        seen_window_seconds: float = DEFAULT_SEEN_WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.clock = clock  # leases, backoffs and the duplicate window; tests step it
        self.dialect = engine.dialect.name
        self.lease_seconds = lease_seconds
        self.owner = uuid.uuid4().hex
        self._queue: asyncio.Queue[_Pending] | None = None
        self._writer_task: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-commit")
        self._writers = writer_lock(engine)
        self.seen = SeenKeys(engine, seen_window_seconds, clock)
        self._upkeep: asyncio.Task | None = None
        self._listeners: list[asyncio.Event] = []
        self.commits = 0  # transactions run, for the benchmark's group-commit ratio
        self._mark = "%s" if self.dialect == "postgresql" else "?"
        columns = ("stream", "destination", "kind", "payload", "objects", "options",
                   "enqueued_at", "available_at", "attempts")  # fmt: skip
        marks = ", ".join([self._mark] * len(columns))
        self._insert_sql = f"INSERT INTO outbox ({', '.join(columns)}) VALUES ({marks})"
        self._claim_sql = _claim_sql(self.dialect)
        self.paused: frozenset[str] = frozenset()  # streams whose rows are written held
        self._paused_read = -float("inf")

    async def write(self, fn, *args):
        """Run ``fn(*args)`` (a write transaction) on the outbox's writer thread.

        Every write of a ``serve`` process goes through this one thread, in turn with the
        intake group commits. SQLite has one write lock; writers racing for it from
        several threads wait in SQLite's busy handler, which sleeps (up to 100 ms at a
        time) rather than queueing, and that sleep was the accept path's p99."""
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._locked, fn, *args
        )

    def run_with_writers(self, fn):
        """``write`` for callers on other threads: runs ``fn`` on the writer thread, in
        turn with everything else written, and waits for it. Once the writer thread is
        gone (the outbox closed, or the interpreter exiting), ``fn`` runs on the caller's."""
        try:
            future = self._thread.submit(self._locked, fn)
        except RuntimeError:  # cannot schedule new futures after shutdown
            return self._locked(fn)
        return future.result()

    def _locked(self, fn, *args):
        """``fn`` holding the store's writer queue (``headwater.state.writer_lock``): the
        Currents landing process writes to the same SQLite file."""
        if self._writers is None:
            return fn(*args)
        return self._writers.run(fn, *args)

    # ---- paused streams ----------------------------------------------------------------

    def forget_pauses(self) -> None:
        """Read the paused streams again at the next write or claim (after a pause here)."""
        self._paused_read = -float("inf")

    def _read_pauses(self, conn) -> None:
        """Refresh this process's view of the paused streams (at most once a second), on
        the writer thread inside a write's transaction: rows this process wrote ready
        under the old view of a stream paused since are held now, and rows it wrote held
        for a stream resumed since are released, so no row is left behind either way."""
        tick = time.monotonic()
        if tick - self._paused_read < PAUSES_READ_SECONDS:
            return
        now = pauses.read_paused(conn)
        for stream in now - self.paused:
            pauses.hold(conn, stream)
        for stream in self.paused - now:
            pauses.release(conn, stream)
        self.paused, self._paused_read = now, tick

    # ---- intake side -------------------------------------------------------------------

    def subscribe(self) -> asyncio.Event:
        """An event set whenever new rows are committed, so delivery wakes at once."""
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    async def enqueue(
        self,
        entries: Sequence[OutboxEntry],
        extra: Sequence[tuple[Table, list[dict], Sequence[str]]] = (),
    ) -> int:
        """Commit ``entries`` (and ``extra`` upserts: table, rows, key columns) in the next
        group commit; returns how many entries were dropped as duplicates. Returns only
        after the commit, and raises if the commit failed."""
        for entry in entries:
            if b"\n" in entry.payload:  # rows keep one object per line
                raise ValueError("an outbox payload must be compact JSON (no raw newline)")
            if entry.dedupe_key is not None:
                entry.dedupe_key = normalise_key(entry.dedupe_key)
        if self._writer_task is None or self._writer_task.done():
            self._queue = asyncio.Queue()
            self._writer_task = asyncio.get_running_loop().create_task(self._commit_loop())
        future = asyncio.get_running_loop().create_future()
        assert self._queue is not None
        self._queue.put_nowait(_Pending(entries, extra, future))
        return await future

    async def _commit_loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            group = [first]
            while not self._queue.empty():
                group.append(self._queue.get_nowait())
            try:
                dropped = await self.write(self._write_group, group)
            except Exception as exc:  # every waiter learns its request was not committed
                for pending in group:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            for pending, count in zip(group, dropped, strict=True):
                if not pending.future.done():
                    pending.future.set_result(count)
            for event in self._listeners:
                event.set()
            if (self._upkeep is None or self._upkeep.done()) and self.seen.upkeep_due(self.clock()):
                self._upkeep = loop.create_task(self._run_upkeep())

    async def _run_upkeep(self) -> None:
        """Seen-key upkeep on the writer thread, one short transaction per step, so intake
        commits queue between the steps instead of waiting for all of them."""
        try:
            for step in self.seen.upkeep():
                await self.write(step)
        except Exception as exc:  # the log stays; the next upkeep tries again
            log.warning("seen-key upkeep failed: %s", type(exc).__name__)

    def _write_group(self, group: list[_Pending]) -> list[int]:
        now = self.clock()
        keys = {e.dedupe_key for p in group for e in p.entries if e.dedupe_key}
        with self.engine.begin() as conn:
            self._read_pauses(conn)
            paused = self.paused
            fresh = self.seen.claim(conn, keys, now) if keys else set()
            claimed = set(fresh)
            batches: dict[tuple[str, str, str, int], list[bytes]] = {}
            dropped: list[int] = []
            for pending in group:
                count = 0
                for entry in pending.entries:
                    if entry.dedupe_key:
                        if entry.dedupe_key not in fresh:
                            count += 1
                            continue
                        fresh.discard(entry.dedupe_key)  # a second copy in this group
                    key = (entry.stream, entry.destination, entry.kind, entry.options)
                    batches.setdefault(key, []).append(entry.payload)
                dropped.append(count)
            held = now + pauses.HELD  # a paused stream's rows wait out of the claim's range
            rows = [
                (stream, destination, kind, b"\n".join(chunk), len(chunk), options, now,
                 held if paused and pauses.is_paused(stream, paused) else now, 0)
                for (stream, destination, kind, options), payloads in batches.items()
                for chunk in chunks(payloads, OBJECTS_PER_ROW)
            ]  # fmt: skip
            if rows:
                # Straight to the driver's executemany: this is the hottest statement of
                # intake, and SQLAlchemy's per-row parameter processing doubled its cost.
                conn.exec_driver_sql(self._insert_sql, rows)
            # Upserts of one group are merged by key (later wins): one statement may not
            # touch the same row twice on PostgreSQL.
            merged: dict[tuple[str, tuple[str, ...]], tuple[Table, dict]] = {}
            for pending in group:
                for table, extra_rows, key_columns in pending.extra:
                    slot = merged.setdefault((table.name, tuple(key_columns)), (table, {}))
                    for row in extra_rows:
                        slot[1][tuple(row[c] for c in key_columns)] = row
            for (_name, key_columns), (table, by_key) in merged.items():
                if by_key:
                    conn.execute(_upsert(self.dialect, table, key_columns), list(by_key.values()))
        self.seen.remember(claimed, now)
        self.commits += 1
        return dropped

    # ---- delivery side -----------------------------------------------------------------

    def claim(self, destination: str, limit: int) -> list[OutboxRow]:
        """Lease the oldest ready rows of one destination, up to ``limit`` objects (at
        least one row, whatever its size)."""
        now = self.clock()
        until = now + self.lease_seconds
        # Driver SQL built once (see _claim_sql): a claim runs on the writer thread between
        # intake commits, many times a second.
        with self.engine.begin() as conn:
            self._read_pauses(conn)
            if self.dialect == "postgresql":
                # Row locks and window functions do not mix: pick the prefix here.
                picked = conn.exec_driver_sql(
                    self._claim_sql["pick"], (destination, now, now, limit)
                ).all()
                chosen = list(_prefix_ids(picked, limit))
                if not chosen:
                    return []
                result = conn.exec_driver_sql(self._claim_sql["lease"], (self.owner, until, chosen))
            else:
                # One statement, so the read and the write share SQLite's write lock.
                result = conn.exec_driver_sql(
                    self._claim_sql["lease"],
                    (self.owner, until, destination, now, now, limit, limit),
                )
            rows = [OutboxRow(*row) for row in result]
        rows.sort(key=lambda r: r.id)
        return rows

    def claim_unrouted(self, destinations: Collection[str], limit: int = 500) -> list[OutboxRow]:
        """Lease rows for none of ``destinations`` (the ones this project configures):
        no worker will ever claim them. Waiting backoffs do not matter here."""
        now = self.clock()
        free = or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now)
        query = select(outbox.c.id).where(free).order_by(outbox.c.id).limit(limit)
        if destinations:
            query = query.where(outbox.c.destination.not_in(sorted(destinations)))
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        with self.engine.begin() as conn:
            ids = list(conn.execute(query).scalars())
            if not ids:
                return []
            result = conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids))
                .values(lease_owner=self.owner, lease_until=now + self.lease_seconds)
                .returning(*(outbox.c[name] for name in ROW_COLUMNS.split(", ")))
            )
            rows = [OutboxRow(*row) for row in result]
        rows.sort(key=lambda r: r.id)
        return rows

    def extend_lease(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids), outbox.c.lease_owner == self.owner)
                .values(lease_until=self.clock() + self.lease_seconds)
            )

    def ack(self, ids: Iterable[int], conn=None) -> None:
        """Every object of these rows is settled (delivered or parked): the rows leave."""
        ids = list(ids)
        if not ids:
            return
        if conn is None:
            with self.engine.begin() as conn:
                self.ack(ids, conn)
            return
        for chunk in chunks(ids, IDS_PER_STATEMENT):
            marks = ", ".join([self._mark] * len(chunk))
            conn.exec_driver_sql(f"DELETE FROM outbox WHERE id IN ({marks})", tuple(chunk))

    def release(self, retries: dict[int, Retry], conn=None) -> None:
        """Give rows back for a later try, counting the attempt; a row with
        ``remaining`` objects keeps only those."""
        if not retries:
            return
        if conn is None:
            with self.engine.begin() as conn:
                self.release(retries, conn)
            return
        now = self.clock()
        values = {
            "attempts": outbox.c.attempts + bindparam("tried"),
            "lease_owner": None,
            "lease_until": None,
            "last_error": bindparam("error"),
            "available_at": bindparam("at"),
        }
        whole, trimmed = [], []
        for row_id, retry in retries.items():
            params = {
                "row_id": row_id,
                "error": retry.error[:2000],
                "at": now + retry.delay,
                "tried": int(retry.counted),
            }
            if retry.remaining is None:
                whole.append(params)
            else:
                params.update(payload=b"\n".join(retry.remaining), count=len(retry.remaining))
                trimmed.append(params)
        where = outbox.c.id == bindparam("row_id")
        if whole:
            conn.execute(update(outbox).where(where).values(values), whole)
        if trimmed:
            resized = {**values, "payload": bindparam("payload"), "objects": bindparam("count")}
            conn.execute(update(outbox).where(where).values(resized), trimmed)

    def release_owned(self) -> int:
        """Give back every row this process still holds a lease on, ready at once and with
        no attempt counted: called at shutdown once delivery has stopped, so another process
        (or the next start) takes them over now rather than when the lease runs out. Returns
        how many rows went back."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(outbox)
                .where(outbox.c.lease_owner == self.owner)
                .values(lease_owner=None, lease_until=None)
            )
        return result.rowcount

    def depth(self, destination: str | None = None) -> int:
        """Objects waiting (or in flight) in the outbox."""
        query = select(func.coalesce(func.sum(outbox.c.objects), 0))
        if destination is not None:
            query = query.where(outbox.c.destination == destination)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def held(self) -> int:
        """Objects held for paused streams (part of ``depth``): a backlog that waits for a
        resume, not for Braze. Read through the claim index (held rows sort last)."""
        query = select(func.coalesce(func.sum(outbox.c.objects), 0)).where(
            outbox.c.available_at >= pauses.HELD
        )
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def close(self) -> None:
        for task in (self._writer_task, self._upkeep):
            if task is not None:
                task.cancel()
        self._thread.shutdown(wait=True)


ROW_COLUMNS = "id, stream, destination, kind, payload, objects, options, attempts, enqueued_at"
_READY = (
    "destination = {m} AND available_at <= {m} AND (lease_until IS NULL OR lease_until < {m}) "
    f"AND {pauses.NOT_PAUSED}"
)

# Oldest ready first, in the claim index's own order (``available_at``, then the id it
# ends with): the claim reads only the rows it leases. Ordered by id alone, it read and
# sorted every ready row first, so a backlog (after an outage) made each claim, holding
# the write lock, cost time in proportion to it: 80 ms at 100,000 rows. A row retried
# late comes after what was ready before it; dedupe tells an older value from a newer one
# by id, not by delivery order.
_ORDER = "available_at, id"


def _claim_sql(dialect: str) -> dict[str, str]:
    """The claim's statements. SQLite: one UPDATE whose subquery keeps the leading rows up
    to the object limit (a running sum; always the first row). PostgreSQL: pick rows with
    ``FOR UPDATE SKIP LOCKED``, then lease the chosen ones."""
    if dialect == "postgresql":
        ready = _READY.format(m="%s")
        return {
            "pick": f"SELECT id, objects FROM outbox WHERE {ready} ORDER BY {_ORDER} LIMIT %s "
            "FOR UPDATE SKIP LOCKED",
            "lease": "UPDATE outbox SET lease_owner = %s, lease_until = %s "
            f"WHERE id = ANY(%s) RETURNING {ROW_COLUMNS}",
        }
    ready = _READY.format(m="?")
    return {
        "lease": "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id IN ("
        f"SELECT id FROM (SELECT id, objects, SUM(objects) OVER (ORDER BY {_ORDER}) AS upto "
        f"FROM outbox WHERE {ready} ORDER BY {_ORDER} LIMIT ?) "
        f"WHERE upto <= ? OR upto = objects) RETURNING {ROW_COLUMNS}"
    }


def _prefix_ids(rows: Sequence[tuple[int, int]], limit: int) -> Iterable[int]:
    """Ids of the leading rows whose objects fit in ``limit`` (always the first row)."""
    total = 0
    for row_id, objects in rows:
        if total and total + objects > limit:
            return
        total += objects
        yield row_id


__all__ = [
    "OPT_DEDUPE_ATTRIBUTES",
    "OPT_RESOLVE_EMAIL",
    "Outbox",
    "OutboxEntry",
    "OutboxRow",
    "Retry",
    "outbox",
]
