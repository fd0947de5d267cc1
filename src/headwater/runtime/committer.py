"""Keys Braze accepted, committed to a job's record in bulk: often enough that a crash
resends little, rarely enough that commits cost little. Used by the sync engine (its
snapshot) and audiences (their membership state)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A crash resends at most the rows accepted since the last commit (harmless for
# attributes; events may repeat). EVERY_ROWS caps that: a commit is due at that many rows
# whatever the time.
EVERY_ROWS = 50_000
EVERY_SECONDS = 2.0
SPACING = 10  # at least this many times a commit's own duration between commits


class BatchCommitter:
    """``commit(keys)`` (returning how many it applied) called on buffered keys, spaced so
    commits never take more than a tenth of the run (each scans the job's tables, so on a
    big run it costs more). ``spacing=1``: commits whose cost follows their rows, not the
    tables (PostgreSQL snapshots) follow each other as soon as due, so that little is
    left for the last one, which the run waits for.

    ``background``: a commit runs in a thread of its own, one at a time, so sending never
    waits for the database (on PostgreSQL a commit of 50,000 rows takes a second or more);
    keys accepted meanwhile wait for the next one. ``flush`` waits for it and commits the
    rest; ``join`` only waits (before the engine is closed)."""

    def __init__(
        self,
        commit: Callable[[list], int],
        *,
        enabled: bool = True,
        background: bool = False,
        every_rows: int = EVERY_ROWS,
        spacing: float = SPACING,
    ) -> None:
        self.commit = commit
        self.enabled = enabled  # a dry run commits nothing
        self.background = background
        self.every_rows = every_rows
        self.spacing = spacing
        self.pending: list = []
        self.committed = 0
        self.last = time.monotonic()
        self.every = EVERY_SECONDS
        self._worker: threading.Thread | None = None
        self._error: BaseException | None = None

    def add(self, keys: list) -> None:
        if not self.enabled or not keys:
            return
        self._raise()
        self.pending.extend(keys)
        due = len(self.pending) >= self.every_rows or time.monotonic() - self.last >= self.every
        if not due or (self._worker is not None and self._worker.is_alive()):
            return
        batch, self.pending = self.pending, []
        if self.background:
            self._worker = threading.Thread(
                target=self._commit, args=(batch,), name="batch-commit", daemon=True
            )
            self._worker.start()
        else:
            self._commit(batch)
            self._raise()

    def _commit(self, batch: list) -> None:
        started = time.monotonic()
        try:
            self.committed += self.commit(batch)
        except BaseException as exc:  # raised in the sending thread, at its next add/flush
            self._error = exc
            return
        self.every = max(EVERY_SECONDS, (time.monotonic() - started) * self.spacing)
        self.last = time.monotonic()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def join(self) -> None:
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def flush(self) -> None:
        self.join()
        self._raise()
        if self.pending:
            batch, self.pending = self.pending, []
            self._commit(batch)
            self._raise()
        self.last = time.monotonic()
