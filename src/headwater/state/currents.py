"""Currents batches between their 2xx and the landing, the ids already landed, and the
batches refused for inspection.

A batch Braze posts is committed here (in the outbox's group commit, so a burst costs one
transaction) before it is answered: a 2xx means the events survive any crash. The landing
worker then takes pending batches in *landings*: a landing is named after the smallest
batch id it holds (``seq``); then, in short transactions of their own, every event id of its
batches is claimed in ``currents_landed`` (first claim wins, so an id Braze sent twice is
owned by one landing only; on SQLite that table has a file of its own, see
``headwater.state.currents_claims``). What a landing writes is therefore fixed once its claims are
made, before any file: its batches, less the ids it does not own. Writing its files again after a crash
(same names, same content, atomically replaced) cannot land an event twice; the batches
leave once the files are in place.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

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
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from headwater.chunks import chunks
from headwater.state.counters import Counters
from headwater.state.currents_claims import (
    MAX_EVENT_ID,
    claims_store,
    claims_table,
    currents_landed,
    sync_wal,
)
from headwater.state.db import metadata

_ID = BigInteger().with_variant(Integer, "sqlite")
IDS_PER_STATEMENT = 500
BATCHES_PER_STEP = 10  # batches named per transaction (``grow``): 1-2 ms
FINISH_BATCHES_PER_STEP = 50  # batches deleted per transaction: about a millisecond
CLAIMS_PER_STEP = 1_000  # ids claimed per transaction in the state store: ~10-20 ms
KEEP_REJECTED = 10_000  # refused batches kept for inspection (the newest)
LANDED = "landed:"  # a receiver's counter of events landed, per event type: landed:<type>


def landed_stream(receiver: str) -> str:
    """The ``stream_counters`` stream a receiver's landed events are counted under."""
    return f"currents-landing:{receiver}"  # (not the forward stream currents:NAME)


currents_batches = Table(
    "currents_batches",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("batch_key", String(32), nullable=False, unique=True),  # the group commit's key
    Column("receiver", String(64), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # the checked body, compact JSON
    Column("ids", LargeBinary, nullable=False),  # its events' ids, a JSON array, in order
    Column("events", Integer, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("landing_seq", BigInteger, nullable=True),  # the landing that holds the batch
    Column("landing_until", Float, nullable=True),  # when another worker may take it over
    sqlite_autoincrement=True,  # a landing is named after a batch id: never reuse one
)
# Covering the landing's questions (which batches are pending, in order; how many events
# a landing holds) so they never read a row: ``events`` comes after the payload in the
# row, and reading it walked the payload's overflow pages (a landing of 500 batches read
# 20 MB per naming step, holding the write lock up to 60 ms).
Index(
    "ix_currents_batches_landing_events",
    currents_batches.c.landing_seq,
    currents_batches.c.id,
    currents_batches.c.events,
)

# Landings whose files are final while their batches are deleted, a step at a time.
currents_finishing = Table(
    "currents_finishing",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("batch_ids", LargeBinary, nullable=False),  # the batches its files hold, JSON
)

currents_rejected = Table(
    "currents_rejected",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("batch_key", String(32), nullable=False, unique=True),
    Column("receiver", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),  # as received
    Column("received_at", Float, nullable=False),
)

BATCH_KEY = ("batch_key",)


def new_batch_key() -> str:
    return uuid.uuid4().hex


def batch_row(receiver: str, body: bytes, ids: Sequence[str], now: float) -> dict:
    """A ``currents_batches`` row for the outbox's group commit (``extra``): the body,
    checked to be ``{"events": [...]}`` of well-formed events, as compact JSON."""
    return {
        "batch_key": new_batch_key(),
        "receiver": receiver,
        "payload": body,
        "ids": orjson.dumps(list(ids)),
        "events": len(ids),
        "received_at": now,
        "landing_seq": None,
        "landing_until": None,
    }


def rejected_row(receiver: str, status: int, reason: str, body: bytes, now: float) -> dict:
    return {
        "batch_key": new_batch_key(),
        "receiver": receiver,
        "status": status,
        "reason": reason[:4000],
        "body": body,
        "received_at": now,
    }


@dataclass(slots=True)
class PendingBatch:
    id: int
    batch_key: str
    receiver: str
    payload: bytes
    received_at: float
    ids: list[str]  # its events' ids, in order


@dataclass(slots=True)
class Landing:
    """What one landing writes: its batches, and the ids it owns per receiver."""

    seq: int
    batches: list[PendingBatch]
    owned: dict[str, set[str]]
    resumed: bool = False  # named earlier, by a worker that did not finish it

    @property
    def name(self) -> str:
        """Unique for ever, even across state stores (a new store numbers batches from 1
        again, and its files must not replace the old store's): the seq, then the first
        batch's random key."""
        key = self.batches[0].batch_key[:12] if self.batches else "empty"
        return f"{self.seq:016d}-{key}"


class CurrentsLedger:
    """The landing's calls; each is one transaction. They run in the landing process
    (``headwater.exports.currents_lander``); those on the state store queue with
    ``serve``'s intake commits for SQLite's write lock (``headwater.state.writer_lock``),
    the claims do not when they have a file of their own (``claims_apart``, see
    ``headwater.state.currents_claims``)."""

    def __init__(self, engine: Engine, lease_seconds: float = 60.0, clock=time.time) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.landed = claims_table(engine)
        self.claims_apart = self.landed is not currents_landed
        self._claims: Engine | None = None

    @property
    def claims(self) -> Engine:
        """The engine the ids are claimed on (opened on first use)."""
        if self._claims is None:
            self._claims = claims_store(self.engine)
        return self._claims

    def sync_named(self) -> None:
        """Before claims in a file of their own: the landing's naming made durable, so no
        crash leaves claims for a landing the state store forgot it named."""
        if self.claims_apart:
            sync_wal(self.engine)

    def next_landing(self, max_events: int, take_over_all: bool = False) -> tuple[int, bool] | None:
        """The landing to write next, ``(seq, resumed)``: one named earlier whose worker
        stopped (its lease ran out, or ``take_over_all`` at start-up) comes first; else a
        new one over the oldest pending batches, up to ``max_events`` (at least one batch)
        and ``BATCHES_PER_STEP`` (``grow`` adds more). Only names: its ids are claimed by ``claim_steps``, its events read by ``read``.
        Short on purpose: it runs on the writer thread, where every intake commit waits
        for it (claiming 20,000 ids in here was the accept path's p99)."""
        now = self.clock()
        c = currents_batches.c
        with self.engine.begin() as conn:
            stale = c.landing_seq.is_not(None)
            if not take_over_all:
                stale = stale & (c.landing_until < now)
            seq = conn.execute(select(func.min(c.landing_seq)).where(stale)).scalar()
            if seq is not None:
                conn.execute(
                    update(currents_batches)
                    .where(c.landing_seq == seq)
                    .values(landing_until=now + self.lease_seconds)
                )
                return int(seq), True
            picked = self._pick(conn, max_events, first=True)
            if not picked:
                return None
            seq = picked[0]
            self._mark(conn, seq, picked, now)
            return seq, False

    def grow(self, seq: int, max_events: int) -> int:
        """Add the next oldest pending batches to new landing ``seq``, one short step (at
        most ``BATCHES_PER_STEP``) up to ``max_events`` in all; returns how many were added,
        0 when it is full or nothing is pending. Marking a batch rewrites its row (payload
        included), so a landing is named in steps the intake commits take turns with; one
        that stops half grown is simply smaller (what is marked is the landing)."""
        now = self.clock()
        c = currents_batches.c
        with self.engine.begin() as conn:
            held = conn.execute(
                select(func.coalesce(func.sum(c.events), 0)).where(c.landing_seq == seq)
            ).scalar_one()
            if held >= max_events:
                return 0
            picked = self._pick(conn, max_events - int(held), first=False)
            self._mark(conn, seq, picked, now)
            return len(picked)

    def _pick(self, conn, room: int, *, first: bool) -> list[int]:
        c = currents_batches.c
        query = (
            select(c.id, c.events)
            .where(c.landing_seq.is_(None))
            .order_by(c.id)
            .limit(BATCHES_PER_STEP)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        picked, total = [], 0
        for row in conn.execute(query):
            if (picked or not first) and total + row.events > room:
                break
            picked.append(row.id)
            total += row.events
        return picked

    def _mark(self, conn, seq: int, ids: list[int], now: float) -> None:
        c = currents_batches.c
        for chunk in chunks(ids, IDS_PER_STATEMENT):
            conn.execute(
                update(currents_batches)
                .where(c.id.in_(chunk) & c.landing_seq.is_(None))
                .values(landing_seq=seq, landing_until=now + self.lease_seconds)
            )

    def read_batches(self, seq: int, *, payloads: bool = True) -> list[PendingBatch]:
        """Landing ``seq``'s batches (a read: runs beside the writers); without their
        payloads (empty) when only the ids are wanted, for ``claim_steps``."""
        c = currents_batches.c
        payload = c.payload if payloads else literal(b"", LargeBinary).label("payload")
        with self.engine.connect() as conn:
            return [
                PendingBatch(
                    r.id, r.batch_key, r.receiver, r.payload, r.received_at, orjson.loads(r.ids)
                )
                for r in conn.execute(
                    select(c.id, c.batch_key, c.receiver, payload, c.received_at, c.ids)
                    .where(c.landing_seq == seq)
                    .order_by(c.id)
                )
            ]

    def claim_steps(self, seq: int, batches: Sequence[PendingBatch]):
        """Claim every event id of landing ``seq`` for it: in the state store one short
        transaction per step (``CLAIMS_PER_STEP`` ids), so intake commits take their turns
        between the steps; in a claims file of its own, one transaction (durable at
        commit), after ``sync_named``.
        First claim wins, so an id Braze sent twice is owned by one landing only. Safe to
        run again (a resumed landing does): a claim already made is kept, one made by
        another landing meanwhile stays that landing's, one never made is made now. The
        landing is therefore fixed once all its steps ran, before any file is written."""
        claims = dict.fromkeys((b.receiver, i) for b in batches for i in b.ids)
        mark = "%s" if self.dialect == "postgresql" else "?"
        # Straight to the driver: a claim per event, tens of thousands a second.
        sql = (
            "INSERT INTO currents_landed (receiver, event_id, seq, landed_at) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}) ON CONFLICT DO NOTHING"
        )

        def step(rows: list[tuple[str, str]]):
            def run() -> None:
                now = self.clock()
                with self.claims.begin() as conn:
                    conn.exec_driver_sql(sql, [(r, i, seq, now) for r, i in rows])

            return run

        size = max(len(claims), 1) if self.claims_apart else CLAIMS_PER_STEP
        return [step(chunk) for chunk in chunks(list(claims), size)]

    def read_owned(self, seq: int) -> dict[str, set[str]]:
        """The ids landing ``seq`` owns, per receiver (after its ``claim_steps``)."""
        owned: dict[str, set[str]] = {}
        c = self.landed.c
        with self.claims.connect() as conn:
            for receiver, event_id in conn.execute(
                select(c.receiver, c.event_id).where(c.seq == seq)
            ):
                owned.setdefault(receiver, set()).add(event_id)
        return owned

    def read(self, seq: int, resumed: bool = False) -> Landing:
        """Landing ``seq`` claimed and read in one call, on the caller's thread (tests and
        tools; the landing worker runs the same steps, its claims on the writer thread)."""
        batches = self.read_batches(seq)
        self.sync_named()
        for step in self.claim_steps(seq, batches):
            step()
        return Landing(seq, batches, self.read_owned(seq), resumed)

    def named_landings(self) -> set[int]:
        """The landings named and not finished: their files may be written again."""
        c = currents_batches.c
        query = select(c.landing_seq).where(c.landing_seq.is_not(None)).distinct()
        with self.engine.connect() as conn:
            return {int(seq) for seq in conn.execute(query).scalars()}

    def finish(
        self,
        seq: int,
        landed: dict[tuple[str, str], int] | None = None,
        batch_ids: Sequence[int] | None = None,
    ) -> int:
        """``finish_steps`` run one after the other; returns how many batches left."""
        return sum(step() for step in self.finish_steps(seq, landed, batch_ids))

    def finish_steps(
        self,
        seq: int,
        landed: dict[tuple[str, str], int] | None = None,
        batch_ids: Sequence[int] | None = None,
    ) -> Iterator[Callable[[], int]]:
        """The landing's files are in place: its batches leave, in short transactions run
        in order (each returns how many batches it deleted). The first records the landing
        as finished, with the batches it wrote (only ``batch_ids``, the ones it read, when
        given: a landing process ``serve`` outlived by a moment may still add batches to
        it, and those were not written) and counts the events it landed (``landed``:
        (receiver, event type) -> events), so a landing written again after a crash is
        counted once; the next delete those batches ``FINISH_BATCHES_PER_STEP`` at a
        time (deleting a whole landing at once held the write lock 45-65 ms); the last
        forgets the record. A crash in between: the landing, taken over, is not written
        again (its files hold batches already gone), it finishes (``finishing``)."""
        recorded: list[int] = []

        def record() -> int:
            recorded.extend(self._record_finished(seq, landed, batch_ids))
            return 0

        yield record
        yield from self.delete_steps(seq, recorded)

    def _record_finished(self, seq, landed, batch_ids) -> list[int]:
        c = currents_batches.c
        with self.engine.begin() as conn:
            if self.finishing(seq, conn) is not None:  # recorded already: count once
                return []
            query = select(c.id).where(c.landing_seq == seq).order_by(c.id)
            held = list(conn.execute(query).scalars())
            if batch_ids is not None:
                held = sorted(set(held) & set(batch_ids))
            if not held:  # finished already (and forgotten): nothing to count again
                return []
            conn.execute(insert(currents_finishing).values(seq=seq, batch_ids=orjson.dumps(held)))
            if landed:
                Counters(self.engine).add(
                    Counter({(landed_stream(r), LANDED + t): n for (r, t), n in landed.items()}),
                    conn,
                )
        return held

    def finishing(self, seq: int, conn=None) -> list[int] | None:
        """The batches of landing ``seq`` if it was recorded as finished (its files are
        final) and its batches are not all gone yet, else None."""
        query = select(currents_finishing.c.batch_ids).where(currents_finishing.c.seq == seq)
        if conn is None:
            with self.engine.connect() as conn:
                blob = conn.execute(query).scalar()
        else:
            blob = conn.execute(query).scalar()
        return None if blob is None else orjson.loads(blob)

    def delete_steps(self, seq: int, batch_ids: Sequence[int]) -> Iterator[Callable[[], int]]:
        """Landing ``seq``'s (finished) batches deleted a bounded step at a time, the last
        step with its record; safe to run again from the start (a deleted batch is not
        deleted twice)."""
        c = currents_batches.c
        steps = list(chunks(list(batch_ids), FINISH_BATCHES_PER_STEP))

        def delete_some(chunk: list[int], last: bool) -> int:
            with self.engine.begin() as conn:
                gone = delete(currents_batches).where((c.landing_seq == seq) & c.id.in_(chunk))
                deleted = conn.execute(gone).rowcount
                if last:
                    record = currents_finishing.c.seq == seq
                    conn.execute(delete(currents_finishing).where(record))
                return deleted

        for n, chunk in enumerate(steps):
            yield lambda chunk=chunk, last=n == len(steps) - 1: delete_some(chunk, last)

    def forget(self, older_than: float, limit: int = 50_000) -> int:
        """Drop landed ids older than ``older_than`` (a bounded step per call), and
        refused batches past the newest ``KEEP_REJECTED``."""
        forgotten = self.forget_claims(older_than, limit)
        self.trim_rejected()
        return forgotten

    def forget_claims(self, older_than: float, limit: int = 50_000) -> int:
        """Drop landed ids older than ``older_than`` (a bounded step per call)."""
        c = self.landed.c
        with self.claims.begin() as conn:
            old = select(c.landed_at).where(c.landed_at < older_than).order_by(c.landed_at)
            cutoff = conn.execute(old.offset(limit - 1).limit(1)).scalar()
            bound = older_than if cutoff is None else cutoff
            return conn.execute(delete(self.landed).where(c.landed_at <= bound)).rowcount

    def trim_rejected(self) -> None:
        """Keep the newest ``KEEP_REJECTED`` refused batches."""
        with self.engine.begin() as conn:
            rejected = currents_rejected.c
            newest = conn.execute(
                select(rejected.id).order_by(rejected.id.desc()).offset(KEEP_REJECTED).limit(1)
            ).scalar()
            if newest is not None:
                conn.execute(delete(currents_rejected).where(rejected.id <= newest))


def pending_events(engine: Engine) -> int:
    """Events committed and not landed yet."""
    query = select(func.coalesce(func.sum(currents_batches.c.events), 0))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def rejected_counts(engine: Engine) -> dict[str, int]:
    """Refused batches kept per receiver (at most ``KEEP_REJECTED`` in all)."""
    query = select(currents_rejected.c.receiver, func.count()).group_by(
        currents_rejected.c.receiver
    )
    with engine.connect() as conn:
        return {r: int(n) for r, n in conn.execute(query)}


def pending_by_receiver(engine: Engine) -> dict[str, int]:
    """Events committed and not landed yet, per receiver (a batch leaves once landed)."""
    c = currents_batches.c
    query = select(c.receiver, func.sum(c.events)).group_by(c.receiver)
    with engine.connect() as conn:
        return {r: int(n or 0) for r, n in conn.execute(query)}


def list_rejected(engine: Engine, receiver: str | None = None, limit: int = 100) -> list[dict]:
    query = select(currents_rejected).order_by(currents_rejected.c.id.desc()).limit(limit)
    if receiver:
        query = query.where(currents_rejected.c.receiver == receiver)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


__all__ = [
    "BATCH_KEY",
    "CurrentsLedger",
    "Landing",
    "MAX_EVENT_ID",
    "PendingBatch",
    "batch_row",
    "currents_batches",
    "currents_landed",
    "currents_rejected",
    "list_rejected",
    "pending_events",
    "rejected_row",
]
