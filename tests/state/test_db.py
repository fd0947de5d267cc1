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
