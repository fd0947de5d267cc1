"""One ``serve`` process per SQLite state file.

With SQLite state, a ``serve`` process keeps the duplicate window's event keys in memory
(``headwater.state.seen``): a second process on the same file would share the outbox
safely but would not see the first one's keys, so re-posted events reaching it would go
to Braze twice. Rather than let that happen quietly, the second one is refused at start.
The lock is an ``flock`` on a file beside the state file: the kernel lets go of it when the
process ends, however it ends (a SIGKILL included), so a restart never finds it stale.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import Engine

from headwater.errors import ConfigError


class ServeLock:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.path = state.with_name(state.name + ".serve-lock")
        self._fd: int | None = None

    @classmethod
    def for_engine(cls, engine: Engine) -> ServeLock | None:
        """The lock for a SQLite file store; None for PostgreSQL or an in-memory store."""
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return None
        return cls(Path(database).resolve())

    def acquire(self) -> ServeLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"state: another `headwater serve` (pid {holder}) is using {self.state}. With "
                "SQLite state run one serve process per file; for several, use a "
                "postgresql:// state URL."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
