"""A landing's state writes are short steps, so ``serve``'s intake commits never wait long
for SQLite's write lock: its ids are claimed in a file of their own (on SQLite) and its
batches deleted a few at a time. A crash between any two steps loses no event and lands
none twice, and the landed events are counted once."""

from __future__ import annotations

import sqlite3

import orjson
import pytest
from currents_harness import event, landed
from sqlalchemy import select, text

from headwater.exports.currents_lander import land_cycle
from headwater.exports.currents_landing import landing_database
from headwater.state import currents
from headwater.state.counters import Counters
from headwater.state.currents import (
    CurrentsLedger,
    batch_row,
    currents_batches,
    currents_finishing,
    landed_stream,
    pending_events,
)
from headwater.state.currents_claims import (
    claims_path,
    claims_store,
    currents_landed,
    dispose_claims,
)
from headwater.state.db import open_state


@pytest.fixture
def sqlite_engine(tmp_path):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    yield engine
    dispose_claims(engine)
    engine.dispose()


def _commit(engine, ids, kind="users.behaviors.CustomEvent"):
    body = orjson.dumps({"events": [event(kind, event_id=i) for i in ids]})
    with engine.begin() as conn:
        conn.execute(currents_batches.insert(), [batch_row("braze", body, ids, 1.7e9)])


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in (root / "currents").rglob("*.parquet")}


class Crash(Exception):
    pass


class CrashingLedger(CurrentsLedger):
    """Dies after ``finish_steps`` ran ``crash_after`` of its steps (the first records the
    landing as finished, each next one deletes a batch here)."""

    crash_after: int | None = None

    def finish_steps(self, *args):
        for n, step in enumerate(super().finish_steps(*args)):
            if n == self.crash_after:
                raise Crash
            yield step


def _landed_count(engine) -> int:
    stream = landed_stream("braze")
    return (
        Counters(engine).read(stream).get(stream, {}).get("landed:users.behaviors.CustomEvent", 0)
    )


def _run(ledger, root, take_over_all=False):
    db = landing_database()
    try:
        return land_cycle(ledger, root, db, 10_000, take_over_all)
    finally:
        db.close()


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_a_crash_while_batches_leave_loses_nothing_and_counts_once(
    engine, tmp_path, monkeypatch, crash_after
):
    """Batches deleted one per step here: the process dies once the landing is recorded
    as finished (1), or after one (2) or two (3) batches left; the next start finishes
    it without writing its files again (they hold batches already gone)."""
    monkeypatch.setattr(currents, "FINISH_BATCHES_PER_STEP", 1)
    root = tmp_path / "landing"
    for n in range(4):
        _commit(engine, [f"{n}-a", f"{n}-b"])
    crashing = CrashingLedger(engine)
    crashing.crash_after = crash_after
    with pytest.raises(Crash):
        _run(crashing, root)
    files = _files(root)
    assert len(landed(root)) == 8
    assert pending_events(engine) == 8 - 2 * (crash_after - 1)
    assert _landed_count(engine) == 8  # counted with the record, once

    seq, resumed, counts = _run(CurrentsLedger(engine), root, take_over_all=True)
    assert resumed and counts == {}
    assert _files(root) == files  # not written again
    ids = sorted(r["id"] for r in landed(root))
    assert ids == sorted(f"{n}-{x}" for n in range(4) for x in "ab")
    assert pending_events(engine) == 0
    assert _landed_count(engine) == 8
    with engine.connect() as conn:
        assert conn.execute(select(currents_finishing)).all() == []
    assert _run(CurrentsLedger(engine), root, take_over_all=True) is None


def test_a_crash_before_the_landing_is_recorded_writes_it_again_identically(engine, tmp_path):
    root = tmp_path / "landing"
    _commit(engine, ["a", "b"])
    _commit(engine, ["c", "a"])  # "a" sent twice by Braze
    crashing = CrashingLedger(engine)
    crashing.crash_after = 0  # files written, the landing not recorded as finished
    with pytest.raises(Crash):
        _run(crashing, root)
    files = _files(root)
    assert _landed_count(engine) == 0
    _commit(engine, ["b", "d"])  # arrives meanwhile: "b" is the first landing's
    _run(CurrentsLedger(engine), root, take_over_all=True)
    assert _files(root).items() >= files.items()  # its files again, byte for byte
    _run(CurrentsLedger(engine), root)
    assert sorted(r["id"] for r in landed(root)) == ["a", "b", "c", "d"]
    assert _landed_count(engine) == 4
    assert pending_events(engine) == 0


def test_finishing_twice_counts_once(engine, tmp_path):
    ledger = CurrentsLedger(engine)
    _commit(engine, ["a"])
    seq, _ = ledger.next_landing(1000)
    ledger.read(seq)
    counts = {("braze", "users.behaviors.CustomEvent"): 1}
    assert ledger.finish(seq, counts) == 1
    assert ledger.finish(seq, counts) == 0
    assert _landed_count(engine) == 1


def test_claims_never_wait_for_the_state_store_write_lock(sqlite_engine, tmp_path):
    """On SQLite the claims have a file of their own: a landing claims its ids while an
    intake commit holds the state store's write lock, and an intake commit goes through
    while a claim holds the claims' lock."""
    ledger = CurrentsLedger(sqlite_engine)
    assert ledger.claims_apart and claims_path(sqlite_engine)
    _commit(sqlite_engine, ["a", "b"])
    seq, _ = ledger.next_landing(1000)
    batches = ledger.read_batches(seq)
    database = str(tmp_path / "state.db")
    intake = sqlite3.connect(database, timeout=0, isolation_level=None)
    intake.execute("BEGIN IMMEDIATE")  # serve's intake, holding the state store's lock
    try:
        for step in ledger.claim_steps(seq, batches):
            step()
    finally:
        intake.execute("ROLLBACK")
    assert ledger.read_owned(seq) == {"braze": {"a", "b"}}

    with claims_store(sqlite_engine).connect() as claim:  # a claim in progress
        claim.execute(text("BEGIN IMMEDIATE"))
        intake.execute("BEGIN IMMEDIATE")  # timeout 0: would raise if it had to wait
        intake.execute("ROLLBACK")
        claim.execute(text("ROLLBACK"))
    intake.close()


def test_claims_made_before_they_had_their_own_file_still_count(
    sqlite_engine, tmp_path, monkeypatch
):
    """A state store from an earlier version holds its claims itself: they move to the
    claims file (a few at a time) when it is first opened, so an id landed then is not
    landed again."""
    from headwater.state import currents_claims

    monkeypatch.setattr(currents_claims, "MOVE_ROWS", 2)
    old = ["a", "c", "d", "e", "f"]
    _commit(sqlite_engine, old)  # landed by that version: its claims in the state store
    with sqlite_engine.begin() as conn:
        conn.execute(currents_batches.delete())
        conn.execute(
            currents_landed.insert(),
            [{"receiver": "braze", "event_id": i, "seq": 1, "landed_at": 1.7e9} for i in old],
        )
    _commit(sqlite_engine, ["a", "b", "f"])  # "a" and "f" again
    ledger = CurrentsLedger(sqlite_engine)
    seq, _ = ledger.next_landing(1000)
    assert ledger.read(seq).owned == {"braze": {"b"}}
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(currents_landed)).all() == []


def test_a_landing_is_durable_before_its_claims(sqlite_engine, tmp_path, monkeypatch):
    """Two files do not commit together: the naming is synced to disk before any claim,
    so no power loss leaves claims for batches the state store forgot were named."""
    order = []
    monkeypatch.setattr(currents, "sync_wal", lambda engine: order.append("sync"))

    class Watched(CurrentsLedger):
        def claim_steps(self, *args):
            return [lambda s=s: (order.append("claim"), s())[1] for s in super().claim_steps(*args)]

    _commit(sqlite_engine, ["a"])
    _run(Watched(sqlite_engine), tmp_path / "landing")
    assert order == ["sync", "claim"]
