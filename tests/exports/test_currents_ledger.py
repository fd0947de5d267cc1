"""A landing is fixed when it is named: written again after a crash it gives the same files
with the same rows, and an id already landed (or claimed by an earlier landing) is never
written a second time."""

from __future__ import annotations

import orjson
from currents_harness import event, landed

from headwater.exports.currents_landing import write_landing
from headwater.state.currents import CurrentsLedger, batch_row, currents_batches, pending_events


def _commit(engine, events, receiver="braze"):
    body = orjson.dumps({"events": events})
    row = batch_row(receiver, body, [e["id"] for e in events], 1_700_000_000.0)
    with engine.begin() as conn:
        conn.execute(currents_batches.insert(), [row])


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*.parquet")}


def test_a_landing_written_again_after_a_crash_lands_nothing_twice(engine, tmp_path):
    ledger = CurrentsLedger(engine)
    _commit(engine, [event(event_id="a"), event("users.behaviors.Purchase", event_id="b")])
    _commit(engine, [event(event_id="c"), event(event_id="a")])  # "a" re-sent by Braze
    seq, resumed = ledger.next_landing(1000)
    assert not resumed
    write_landing(tmp_path, ledger.read(seq))
    first = _files(tmp_path)
    # The process dies here, before ``finish``: the next start writes the landing again.
    assert ledger.next_landing(1000) is None  # a live lease: no other worker takes it...
    again = ledger.next_landing(1000, take_over_all=True)  # ...but a restart does
    assert again == (seq, True)
    write_landing(tmp_path, ledger.read(seq, resumed=True))
    assert set(_files(tmp_path)) == set(first)
    assert sorted(r["id"] for r in landed(tmp_path)) == ["a", "b", "c"]
    assert ledger.finish(seq) == 2
    assert pending_events(engine) == 0
    assert ledger.next_landing(1000, take_over_all=True) is None


def test_an_id_landed_earlier_is_not_landed_again(engine, tmp_path):
    ledger = CurrentsLedger(engine)
    _commit(engine, [event(event_id="a"), event(event_id="b")])
    seq, _ = ledger.next_landing(1000)
    write_landing(tmp_path, ledger.read(seq))
    ledger.finish(seq)
    _commit(engine, [event(event_id="b"), event(event_id="c")])
    _commit(engine, [event(event_id="a")])  # all landed already: no file at all
    seq, _ = ledger.next_landing(1000)
    write_landing(tmp_path, ledger.read(seq))
    ledger.finish(seq)
    assert sorted(r["id"] for r in landed(tmp_path)) == ["a", "b", "c"]


def test_landings_take_whole_batches_up_to_the_limit(engine, tmp_path):
    ledger = CurrentsLedger(engine)
    for n in range(3):
        _commit(engine, [event(event_id=f"{n}-{i}") for i in range(60)])
    seen = []
    while (named := ledger.next_landing(100)) is not None:
        landing = ledger.read(named[0])
        seen.append(len(landing.batches))
        write_landing(tmp_path, landing)
        ledger.finish(named[0])
    assert seen == [1, 1, 1]
    assert len(landed(tmp_path)) == 180


def test_the_old_ids_are_forgotten(engine, tmp_path):
    ledger = CurrentsLedger(engine)
    _commit(engine, [event(event_id="a")])
    seq, _ = ledger.next_landing(1000)
    ledger.read(seq)
    ledger.finish(seq)
    assert ledger.forget(older_than=ledger.clock() + 1) == 1
    _commit(engine, [event(event_id="a")])  # past the window: lands again
    seq, _ = ledger.next_landing(1000)
    assert ledger.read(seq).owned == {"braze": {"a"}}


def test_a_landing_is_named_in_short_steps_up_to_its_limit(engine, tmp_path, monkeypatch):
    from headwater.state import currents

    monkeypatch.setattr(currents, "BATCHES_PER_STEP", 2)
    ledger = CurrentsLedger(engine)
    for n in range(7):
        _commit(engine, [event(event_id=f"{n}-{i}") for i in range(10)])
    seq, _ = ledger.next_landing(50)  # the first step: two batches
    steps = []
    while added := ledger.grow(seq, 50):
        steps.append(added)
    assert steps == [2, 1]  # then up to 50 events: five batches in all
    landing = ledger.read(seq)
    assert len(landing.batches) == 5 and len(landing.owned["braze"]) == 50
    write_landing(tmp_path, landing)
    ledger.finish(seq)
    assert pending_events(engine) == 20


def test_a_batch_added_to_a_landing_after_it_was_read_stays_for_the_next(engine, tmp_path):
    """A landing process ``serve`` outlived by a moment may still grow a landing that the
    new one took over: finishing deletes only the batches it read and wrote."""
    ledger = CurrentsLedger(engine)
    _commit(engine, [event(event_id="a")])
    seq, _ = ledger.next_landing(1000)
    landing = ledger.read(seq)
    _commit(engine, [event(event_id="late")])
    assert ledger.grow(seq, 1000) == 1  # the old process, still growing it
    write_landing(tmp_path, landing)
    assert ledger.finish(seq, None, [b.id for b in landing.batches]) == 1
    assert pending_events(engine) == 1  # "late" was not written: still pending
    again = ledger.next_landing(1000, take_over_all=True)
    write_landing(tmp_path, ledger.read(again[0], resumed=True))
    ledger.finish(again[0])
    assert sorted(r["id"] for r in landed(tmp_path)) == ["a", "late"]
