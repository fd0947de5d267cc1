"""A state store made by an older version is refused with the tables and columns named."""

from __future__ import annotations

import sqlite3
import time

import pytest

from headwater.errors import ConfigError
from headwater.state import outbox as _outbox_tables  # noqa: F401  (declares the tables)
from headwater.state.db import open_state


def test_a_store_missing_columns_is_refused_by_name(tmp_path):
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, stream TEXT, payload BLOB)")
    old.close()
    with pytest.raises(ConfigError) as caught:
        open_state(f"sqlite:///{path}")
    message = str(caught.value)
    assert "older Headwater" in message and "outbox (missing" in message
    assert "objects" in message and "destination" in message


def test_a_current_store_opens_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_state(url).dispose()
    open_state(url).dispose()


def test_background_checkpoints_keep_the_log_copied_and_restart_it_with_the_writers(
    tmp_path, monkeypatch
):
    from sqlalchemy import text

    from headwater.state import db

    monkeypatch.setattr(db, "RESTART_WAL_FRAMES", 50)
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}", background_checkpoints=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (n INTEGER PRIMARY KEY, body BLOB)"))
        for n in range(400):  # ~400 WAL frames that no commit checkpoints by itself
            conn.execute(text("INSERT INTO filler VALUES (:n, zeroblob(4000))"), {"n": n})
    restarts = []

    def with_writers(fn):
        restarts.append(True)
        return fn()

    checkpointer = db.WalCheckpointer(engine, interval=0.05, run_with_writers=with_writers)
    checkpointer.start()
    deadline = time.monotonic() + 5
    while not restarts and time.monotonic() < deadline:
        time.sleep(0.05)
    checkpointer.stop()
    assert restarts  # the restart went through the writers' hook
    with engine.connect() as conn:
        _busy, frames, copied = conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)")).one()
    assert frames == copied  # nothing left uncopied


def test_a_restart_checkpoint_does_not_hold_the_writers_for_a_slow_reader(tmp_path, monkeypatch):
    """A reader on an older snapshot (a long query) keeps a restart checkpoint from
    finishing; the checkpoint settles for what it can copy and lets the writers go, rather
    than hold them (and every intake commit) until the reader is done."""
    import sqlite3

    from sqlalchemy import text

    from headwater.state import db

    monkeypatch.setattr(db, "RESTART_WAL_FRAMES", 50)
    path = tmp_path / "state.db"
    engine = open_state(f"sqlite:///{path}", background_checkpoints=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE filler (n INTEGER PRIMARY KEY, body BLOB)"))
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM filler").fetchone()  # its snapshot, kept open
    with engine.begin() as conn:
        for n in range(400):
            conn.execute(text("INSERT INTO filler VALUES (:n, zeroblob(4000))"), {"n": n})
    returned = []

    def with_writers(fn):
        result = fn()
        returned.append(True)
        return result

    checkpointer = db.WalCheckpointer(engine, interval=0.05, run_with_writers=with_writers)
    checkpointer.start()
    deadline = time.monotonic() + 10  # (SQLite's busy timeout for writers is 30 s)
    while not returned and time.monotonic() < deadline:
        time.sleep(0.05)
    checkpointer.stop()
    reader.execute("COMMIT")
    reader.close()
    assert returned  # the restart gave the writers back while the reader was still open


def test_a_store_missing_only_new_counts_and_indexes_is_brought_up_to_date(tmp_path):
    from sqlalchemy import inspect, text

    from headwater.state.runs import get_run, start_run

    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = open_state(url)
    run_id = start_run(engine, "old")
    with engine.begin() as conn:  # as a version before these columns and indexes made it
        conn.execute(text("DROP INDEX IF EXISTS ix_run_row_errors_value"))  # the console's
        conn.execute(text("ALTER TABLE runs DROP COLUMN data_points_saved"))
        conn.execute(text("ALTER TABLE run_row_errors DROP COLUMN value"))
        conn.execute(text("DROP INDEX ix_outbox_stream"))
    engine.dispose()
    engine = open_state(url)
    assert get_run(engine, run_id).counts["data_points_saved"] == 0
    assert "ix_outbox_stream" in {i["name"] for i in inspect(engine).get_indexes("outbox")}
    assert "value" in {c["name"] for c in inspect(engine).get_columns("run_row_errors")}


def test_processes_starting_together_on_a_fresh_postgresql_store_all_open_it(pg_url):
    """Several serve/sync processes started at once on a new database: each finds the
    tables missing, and without a lock the second CREATE failed on PostgreSQL's pg_type."""
    import threading

    from headwater.state import audiences, currents, runs, triggers  # noqa: F401  (more tables)

    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def opener() -> None:
        start.wait()
        try:
            open_state(pg_url).dispose()
        except BaseException as exc:  # collected for the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def _outbox_ddl(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()[0]


def test_outbox_ids_are_never_handed_out_twice_on_sqlite(tmp_path):
    """Dedupe tells an older value retried late from a newer one by outbox id: a drained
    outbox must not start its ids again (SQLite reuses rowids without AUTOINCREMENT)."""
    path = tmp_path / "state.db"
    engine = open_state(f"sqlite:///{path}")
    table = _outbox_tables.outbox
    row = {"stream": "s", "destination": "d", "kind": "attributes", "payload": b"{}",
           "objects": 1, "options": 0, "enqueued_at": 0.0, "available_at": 0.0}  # fmt: skip
    with engine.begin() as conn:
        first = conn.execute(table.insert().values(**row)).inserted_primary_key[0]
        conn.execute(table.delete())  # delivered: the outbox is empty again
        second = conn.execute(table.insert().values(**row)).inserted_primary_key[0]
    engine.dispose()
    assert second > first


def test_an_older_sqlite_outbox_is_rebuilt_with_its_rows_and_ids(tmp_path):
    path = tmp_path / "state.db"
    open_state(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as conn:  # as an earlier version made it
        ddl = _outbox_ddl(path).replace("AUTOINCREMENT", "")
        conn.execute("DROP TABLE outbox")
        conn.execute(ddl)
        conn.execute(
            "INSERT INTO outbox (id, stream, destination, kind, payload, objects, options, "
            "enqueued_at, available_at, attempts) VALUES (7, 's', 'd', 'attributes', x'7b7d', "
            "1, 0, 0, 0, 0)"
        )
    assert "AUTOINCREMENT" not in _outbox_ddl(path).upper()
    open_state(f"sqlite:///{path}").dispose()
    assert "AUTOINCREMENT" in _outbox_ddl(path).upper()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT id, stream FROM outbox").fetchall() == [(7, "s")]
        indexes = {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert {"ix_outbox_claim", "ix_outbox_stream"} <= indexes
