"""A queue in front of a SQLite store's one write lock, shared by ``serve`` and its
landing process.

SQLite makes a writer that finds the lock taken sleep in its busy handler (1, 2, 5 ... up
to 100 ms at a time) and look again; a process that writes step after step takes the lock
back the moment it lets go, so a sleeping writer can miss every window. Measured: with
the Currents landing process claiming ids in back-to-back steps, ``serve``'s intake
commits waited hundreds of milliseconds. An ``flock`` on a file beside the database wakes
the waiter as soon as the lock is let go, and the landing process pauses a moment after
each step, so intake commits and landing steps alternate instead.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from sqlalchemy import Engine

try:
    import fcntl
except ImportError:  # not POSIX: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")


class WriterLock:
    """Held around each write transaction by the processes that take part (one file
    descriptor per process; one writer thread each)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._guard = threading.Lock()  # threads of one process share the descriptor

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._guard:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def run(self, fn: Callable[..., T], *args) -> T:
        with self.held():
            return fn(*args)


def writer_lock(engine: Engine) -> WriterLock | None:
    """The lock for a SQLite file store (``<database>-writers``); None for PostgreSQL and
    in-memory stores, whose writers need no queue."""
    if fcntl is None or engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return WriterLock(os.path.abspath(database) + "-writers")
