"""Seen event keys survive restarts: a re-posted event is dropped whether this process
logged its key or an earlier one did; keys past the window are let through again, leave
memory and are deleted from the store a bounded stretch at a time."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, inspect, select

from headwater.state import seen as seen_module
from headwater.state.db import open_state
from headwater.state.outbox import Outbox, OutboxEntry
from headwater.state.seen import normalise_key, seen_events, seen_keys


def _entries(keys: range, tag: str = "") -> list[OutboxEntry]:
    return [
        OutboxEntry(
            "s", "braze", "events", f'{{"n":{k}}}'.encode(), dedupe_key=f"{tag}{k}".encode()
        )
        for k in keys
    ]


def _stored(engine) -> int:
    """Keys the store holds: the SQLite log or PostgreSQL's keyed table."""
    table = seen_events if engine.dialect.name == "postgresql" else seen_keys
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture(autouse=True)
def _no_background_upkeep(monkeypatch):
    """The outbox runs upkeep itself after a commit once it is due; here the tests run its
    steps by hand, so its own would race them."""
    monkeypatch.setattr(seen_module, "EXPIRE_SECONDS", 1e9)
    monkeypatch.setattr(seen_module, "PRUNE_SECONDS", 1e9)


def _due(box: Outbox, monkeypatch) -> bool:
    """``upkeep_due`` as if its interval had passed."""
    with monkeypatch.context() as patch:
        patch.setattr(seen_module, "EXPIRE_SECONDS", 0.0)
        patch.setattr(seen_module, "PRUNE_SECONDS", 0.0)
        return box.seen.upkeep_due(box.clock())


def _upkeep(box: Outbox) -> int:
    steps = 0
    for step in box.seen.upkeep():
        step()
        steps += 1
    return steps


def test_keys_are_remembered_across_restarts(state_url):
    engine = open_state(state_url)
    first = Outbox(engine)
    assert asyncio.run(first.enqueue(_entries(range(100)))) == 0
    first.close()

    restarted = Outbox(engine)  # a new process reads the keys back
    assert asyncio.run(restarted.enqueue(_entries(range(50, 150)))) == 50
    assert _stored(engine) == 150
    assert asyncio.run(restarted.enqueue(_entries(range(140, 160)))) == 10
    restarted.close()

    again = Outbox(engine)
    assert asyncio.run(again.enqueue(_entries(range(0, 200, 10)))) == 16  # 0..150 known
    assert again.depth() == 100 + 50 + 10 + 4
    again.close()


def test_keys_past_the_window_are_let_through_and_pruned(state_url, monkeypatch, clock):
    engine = open_state(state_url)
    box = Outbox(engine, seen_window_seconds=60, clock=clock)
    asyncio.run(box.enqueue(_entries(range(10))))
    if engine.dialect.name == "sqlite":
        assert not _due(box, monkeypatch)  # nothing has left the window yet
    _upkeep(box)
    assert _stored(engine) == 10
    clock.advance(59)
    assert asyncio.run(box.enqueue(_entries(range(10)))) == 10
    clock.advance(2)
    assert asyncio.run(box.enqueue(_entries(range(5)))) == 0  # window passed: sent again
    clock.advance(61)
    assert _due(box, monkeypatch)
    _upkeep(box)
    assert _stored(engine) == 0 and box.seen.known == {}
    box.close()


def test_a_key_seen_again_after_the_window_outlives_its_first_sighting(tmp_path, clock):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    box = Outbox(engine, seen_window_seconds=60, clock=clock)
    asyncio.run(box.enqueue(_entries(range(5))))
    clock.advance(61)
    assert asyncio.run(box.enqueue(_entries(range(3)))) == 0  # sighted again, logged again
    _upkeep(box)  # the first sightings expire; the second ones must stay
    assert _stored(engine) == 3 and len(box.seen.known) == 3
    assert asyncio.run(box.enqueue(_entries(range(5)))) == 3
    box.close()
    restarted = Outbox(engine, seen_window_seconds=60, clock=clock)
    assert asyncio.run(restarted.enqueue(_entries(range(3)))) == 3


def test_expiry_deletes_a_bounded_stretch_per_transaction(tmp_path, monkeypatch, clock):
    monkeypatch.setattr(seen_module, "PRUNE_KEYS", 25)
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    box = Outbox(engine, seen_window_seconds=60, clock=clock)
    for n in range(10):  # ten commits of ten keys
        asyncio.run(box.enqueue(_entries(range(n * 10, n * 10 + 10))))
    clock.advance(61)
    asyncio.run(box.enqueue(_entries(range(1000, 1010))))  # still in the window
    steps = box.seen.upkeep()
    next(steps)()
    assert _stored(engine) == 110 - 20  # two whole commits fit under the bound
    # intake goes on between the steps; the newest keys stay known
    assert asyncio.run(box.enqueue(_entries(range(1005, 1015)))) == 5
    for step in steps:
        step()
    assert _stored(engine) == 15 and set(box.seen.known) == {
        normalise_key(str(k).encode()) for k in range(1000, 1015)
    }
    box.close()


def test_each_store_gets_only_the_tables_it_uses(state_url):
    engine = open_state(state_url)
    tables = set(inspect(engine).get_table_names())
    if engine.dialect.name == "postgresql":
        assert "outbox_seen_events" in tables
    else:
        assert "outbox_seen_keys" in tables and "outbox_seen_events" not in tables


def test_the_outbox_expires_keys_by_itself_once_due(tmp_path, monkeypatch, clock):
    monkeypatch.setattr(seen_module, "EXPIRE_SECONDS", 0.0)
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    box = Outbox(engine, seen_window_seconds=60, clock=clock)

    async def main() -> None:
        await box.enqueue(_entries(range(10)))
        clock.advance(61)
        await box.enqueue(_entries(range(100, 101)))  # a commit after the window: upkeep runs
        await box._upkeep  # the task the commit started

    asyncio.run(main())
    assert set(box.seen.known) == {normalise_key(b"100")} and _stored(engine) == 1
    box.close()


def test_a_window_holding_many_keys_in_memory_is_reported(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(seen_module, "WARN_KEYS", 20)
    box = Outbox(open_state(f"sqlite:///{tmp_path / 'state.db'}"))
    with caplog.at_level("WARNING", logger="headwater.outbox"):
        for n in range(5):  # 50 keys: warned at 20 and at 40, not at every commit
            asyncio.run(box.enqueue(_entries(range(n * 10, n * 10 + 10))))
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "headwater.outbox" and "duplicate window" in r.getMessage()
    ]
    assert len(warnings) == 2 and warnings[0].startswith("the duplicate window holds 20 event")
    assert "PostgreSQL" in warnings[0]
    box.close()
    caplog.clear()
    with caplog.at_level("WARNING", logger="headwater.outbox"):
        Outbox(box.engine).close()  # a restart reads them back: said once, at start
    # Only this logger's records: a thread another test left running may log meanwhile.
    assert [r.getMessage()[:42] for r in caplog.records if r.name == "headwater.outbox"] == [
        "the duplicate window holds 50 event keys i"
    ]
