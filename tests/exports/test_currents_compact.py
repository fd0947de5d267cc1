"""Compaction of the Currents landing: small files merged into one, each event still there
once, and a reader globbing the event type's directory at any moment (during a swap
included) sees every event exactly once, or (having listed the directory just before a
swap) fails with a missing file, never a wrong count."""

from __future__ import annotations

import threading

import duckdb
import orjson
from currents_harness import event, landed

from headwater.exports import currents_compact
from headwater.exports.currents_compact import compact_landing
from headwater.exports.currents_landing import landing_database, write_landing
from headwater.state.currents import CurrentsLedger, batch_row, currents_batches
from headwater.state.db import open_state

KIND = "users.behaviors.CustomEvent"


def _land(engine, root, ids, *, finish=True) -> int:
    ledger = CurrentsLedger(engine)
    body = orjson.dumps({"events": [event(KIND, event_id=i) for i in ids]})
    with engine.begin() as conn:
        conn.execute(currents_batches.insert(), [batch_row("braze", body, ids, 1.7e9)])
    seq, _ = ledger.next_landing(1000)
    write_landing(root, ledger.read(seq))
    if finish:
        ledger.finish(seq)
    return seq


def _files(root):
    return sorted(p.name for p in (root / "currents" / "braze" / KIND).glob("*.parquet"))


def test_small_files_are_merged_and_every_event_stays_once(tmp_path):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    root = tmp_path / "landing"
    for n in range(4):
        _land(engine, root, [f"{n}-{i}" for i in range(50)])
    busy = _land(engine, root, ["busy-1", "busy-2"], finish=False)  # may be written again
    assert len(_files(root)) == 5
    db = landing_database()
    assert compact_landing(root, CurrentsLedger(engine).named_landings(), db, at_files=3) == 4
    files = _files(root)
    assert len(files) == 2 and f"part-{busy:016d}-" in files[1] and "compact" in files[0]
    rows = landed(root, kind=KIND)
    assert len(rows) == 202 == len({r["id"] for r in rows})
    assert compact_landing(root, set(), db, at_files=3) == 0  # under the threshold now


def test_a_replaced_generation_stays_readable_for_its_grace(tmp_path, monkeypatch):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    root = tmp_path / "landing"
    for n in range(3):
        _land(engine, root, [f"{n}"])
    old = (root / "currents" / "braze" / KIND).resolve()
    db = landing_database()
    assert compact_landing(root, set(), db, at_files=2) == 3
    assert old.is_dir()  # a reader that listed it just before the swap can still open it
    for n in range(3, 5):
        _land(engine, root, [f"{n}"])
    monkeypatch.setattr(currents_compact, "GRACE_SECONDS", 0.0)
    assert compact_landing(root, set(), db, at_files=2) == 3
    assert not old.exists()
    assert sorted(r["id"] for r in landed(root, kind=KIND)) == ["0", "1", "2", "3", "4"]


def test_a_reader_never_sees_an_event_twice_or_misses_one(tmp_path):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    root = tmp_path / "landing"
    pattern = str(root / "currents" / "braze" / KIND / "*.parquet")
    for n in range(6):
        _land(engine, root, [f"{n}-{i}" for i in range(20)])
    done = threading.Event()
    seen: list[tuple[int, int]] = []
    failed: list[str] = []

    def read() -> None:
        with duckdb.connect() as reader:
            while not done.is_set():
                try:
                    seen.append(
                        reader.execute(
                            "SELECT count(*), count(DISTINCT id) FROM read_parquet(?)", [pattern]
                        ).fetchone()
                    )
                except duckdb.IOException as exc:
                    # Listed one generation, then looked its files up through the swapped
                    # link: a file merged away is "No such file" when opened, and when
                    # every listed file was merged away DuckDB's glob keeps none of them.
                    assert "No such file" in str(exc) or "No files found" in str(exc), exc
                    failed.append(str(exc))

    thread = threading.Thread(target=read)
    thread.start()
    db = landing_database()
    try:
        for n in range(6, 30):  # a landing, then a compaction, over and over
            _land(engine, root, [f"{n}-{i}" for i in range(20)])
            compact_landing(root, set(), db, at_files=2)
            reads = len(seen) + len(failed)
            while (
                len(seen) + len(failed) == reads and thread.is_alive()
            ):  # at least one read between
                done.wait(0.001)
    finally:
        done.set()
        thread.join()
    assert thread.is_alive() is False and len(seen) > len(failed)
    assert all(total == distinct for total, distinct in seen)
    assert all(total % 20 == 0 and total >= 120 for total, _ in seen)  # whole landings only
    assert len(landed(root, kind=KIND)) == 600
