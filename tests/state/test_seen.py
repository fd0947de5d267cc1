"""Seen event keys survive restarts and compaction: a re-posted event is dropped whether its
key is still in the log, already folded into the keyed table, or both; keys past the
window are let through again and eventually deleted."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select

from headwater.state import seen as seen_module
from headwater.state.db import open_state
from headwater.state.outbox import Outbox, OutboxEntry
from headwater.state.seen import normalise_key, seen_events, seen_log


def _entries(keys: range, tag: str = "") -> list[OutboxEntry]:
    return [
        OutboxEntry(
            "s", "braze", "events", f'{{"n":{k}}}'.encode(), dedupe_key=f"{tag}{k}".encode()
        )
        for k in keys
    ]


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _upkeep(box: Outbox) -> None:
    for step in box.seen.upkeep():
        step()


def test_keys_are_remembered_across_a_restart_and_a_compaction(state_url):
    engine = open_state(state_url)
    first = Outbox(engine)
    assert asyncio.run(first.enqueue(_entries(range(100)))) == 0
    first.close()

    restarted = Outbox(engine)  # a new process reads the log back
    assert asyncio.run(restarted.enqueue(_entries(range(50, 150)))) == 50
    _upkeep(restarted)
    if engine.dialect.name == "sqlite":
        assert _count(engine, seen_log) == 0  # all folded into the keyed table
        assert restarted.seen.recent == {}
    assert _count(engine, seen_events) == 150
    assert asyncio.run(restarted.enqueue(_entries(range(140, 160)))) == 10
    restarted.close()

    again = Outbox(engine)
    assert asyncio.run(again.enqueue(_entries(range(0, 200, 10)))) == 16  # 0..150 known
    assert again.depth() == 100 + 50 + 10 + 4
    again.close()


def test_compaction_runs_a_key_range_at_a_time_with_intake_committing_in_between(tmp_path):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    box = Outbox(engine)
    asyncio.run(box.enqueue(_entries(range(40))))
    keys = [normalise_key(str(k).encode()) for k in range(40)]
    steps = box.seen.upkeep()
    next(steps)()  # the keys logged so far become the ones to fold
    next(steps)()  # the first key range
    assert _count(engine, seen_events) == sum(1 for k in keys if k[0] < 256 // 16)
    # intake goes on mid-compaction: old keys are still dropped, new ones logged
    assert asyncio.run(box.enqueue(_entries(range(35, 45)))) == 5
    for step in steps:
        step()
    assert _count(engine, seen_events) == 40
    with engine.connect() as conn:
        logged = conn.execute(select(seen_log.c.key)).scalars().all()
    assert sorted(logged) == sorted(normalise_key(str(k).encode()) for k in range(40, 45))
    assert set(box.seen.recent) == set(logged) and box.seen.compacting == {}
    assert asyncio.run(box.enqueue(_entries(range(45)))) == 45
    box.close()


def test_keys_past_the_window_are_let_through_and_pruned(state_url, monkeypatch):
    monkeypatch.setattr(seen_module, "PRUNE_SECONDS", 0.0)
    engine = open_state(state_url)
    box = Outbox(engine, seen_window_seconds=0.3)
    asyncio.run(box.enqueue(_entries(range(10))))
    _upkeep(box)
    assert asyncio.run(box.enqueue(_entries(range(10)))) == 10
    time.sleep(0.35)
    assert asyncio.run(box.enqueue(_entries(range(5)))) == 0  # window passed: sent again
    time.sleep(0.35)
    _upkeep(box)
    assert _count(engine, seen_events) == 0
    box.close()


def test_upkeep_is_due_after_enough_keys_or_time(tmp_path, monkeypatch):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    box = Outbox(engine)
    now = time.time()
    assert not box.seen.upkeep_due(now)
    asyncio.run(box.enqueue(_entries(range(3))))
    assert not box.seen.upkeep_due(time.time())
    assert box.seen.upkeep_due(time.time() + seen_module.COMPACT_SECONDS + 1)
    monkeypatch.setattr(seen_module, "COMPACT_KEYS", 3)
    assert box.seen.upkeep_due(time.time())
    box.close()


def test_a_compaction_that_fails_part_way_forgets_nothing(tmp_path):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    box = Outbox(engine)
    asyncio.run(box.enqueue(_entries(range(30))))
    steps = box.seen.upkeep()
    next(steps)()
    next(steps)()  # one key range folded, then the store fails
    steps.close()
    assert asyncio.run(box.enqueue(_entries(range(25, 35)))) == 5  # all 30 still known
    again = box.seen.upkeep()
    next(again)()  # the next compaction starts: nothing of the first may be lost
    assert asyncio.run(box.enqueue(_entries(range(36)))) == 35
    for step in again:
        step()
    assert _count(engine, seen_events) == 35
    assert asyncio.run(box.enqueue(_entries(range(36)))) == 36
    box.close()
