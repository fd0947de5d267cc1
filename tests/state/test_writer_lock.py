"""serve and the Currents landing process queue for a SQLite store's write lock through a
lock file: one holds it at a time, and the waiter is let in as soon as it is let go."""

from __future__ import annotations

import threading

from headwater.state.db import open_state
from headwater.state.writer_lock import writer_lock


def test_two_processes_views_of_the_lock_exclude_each_other(tmp_path):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    first, second = writer_lock(engine), writer_lock(engine)  # two descriptors, as two processes
    assert first.path == str(tmp_path / "state.db-writers")
    order = []
    entered = threading.Event()
    release = threading.Event()

    def hold():
        with first.held():
            entered.set()
            order.append("first in")
            release.wait(10)
            order.append("first out")

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(10)
    waiter = threading.Thread(target=lambda: second.run(order.append, "second in"))
    waiter.start()
    release.set()
    holder.join(10)
    waiter.join(10)
    assert order == ["first in", "first out", "second in"]
    engine.dispose()


def test_stores_without_one_writer_file_need_no_queue(pg_url):
    assert writer_lock(open_state("sqlite:///:memory:")) is None
    assert writer_lock(open_state(pg_url)) is None
