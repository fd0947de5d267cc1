"""Rate budgets several processes share, counted in PostgreSQL.

One row per destination, rate bucket and window: a claim is one upsert that adds the slots
granted only while the window has them, so two ``serve`` processes (or a ``serve`` and a
``headwater sync``) together never send more than the destination's limit. SQLite state is
one process's (``serve`` refuses a second one), so its budgets stay in memory.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Engine, Integer, String, Table, delete, text

from headwater.braze.budget import MemoryWindows, WindowCounter, destination_key, limits_from
from headwater.state.db import metadata

# Windows older than this are deleted when a process starts counting a new one.
KEEP_WINDOWS_SECONDS = 3600 * 2

rate_budgets = Table(
    "rate_budgets",
    metadata,
    Column("destination", String(300), primary_key=True),
    Column("bucket", String(100), primary_key=True),
    Column("window_start_ms", BigInteger, primary_key=True),
    Column("used", Integer, nullable=False),
    info={"dialects": {"postgresql"}},
)

# All ``wanted`` slots or none, in one atomic statement: the row is locked by the upsert.
_CLAIM = text(
    """
    INSERT INTO rate_budgets (destination, bucket, window_start_ms, used)
    VALUES (:destination, :bucket, :window_start_ms, :wanted)
    ON CONFLICT (destination, bucket, window_start_ms) DO UPDATE
        SET used = rate_budgets.used + :wanted
        WHERE rate_budgets.used + :wanted <= :limit
    RETURNING used
    """
)


class PostgresWindows:
    """A ``WindowCounter`` in the state store: atomic per window, shared by every process."""

    def __init__(self, engine: Engine, destination: str) -> None:
        self.engine = engine
        self.destination = destination
        self.scope = engine.url.render_as_string(hide_password=True)
        self._pruned: dict[str, float] = {}

    def take(self, bucket: str, window_start: float, limit: int, wanted: int) -> int:
        """Claim ``wanted`` slots, or a single one when fewer are left (the window's tail)."""
        wanted = min(wanted, limit)
        if wanted <= 0:
            return 0
        start_ms = round(window_start * 1000)
        with self.engine.begin() as conn:
            granted = 0
            for ask in (wanted, 1) if wanted > 1 else (1,):
                params = {"destination": self.destination, "bucket": bucket,
                          "window_start_ms": start_ms, "wanted": ask, "limit": limit}  # fmt: skip
                if conn.execute(_CLAIM, params).first() is not None:
                    granted = ask
                    break
            if self._pruned.get(bucket) != window_start:
                self._pruned[bucket] = window_start
                conn.execute(
                    delete(rate_budgets).where(
                        rate_budgets.c.destination == self.destination,
                        rate_budgets.c.bucket == bucket,
                        rate_budgets.c.window_start_ms < start_ms - KEEP_WINDOWS_SECONDS * 1000,
                    )
                )
        return granted


def window_counter(engine: Engine | None, destination: str) -> WindowCounter | None:
    """The shared counter for a state store, or None when counts stay in this process."""
    if engine is None or engine.dialect.name != "postgresql":
        return None
    return PostgresWindows(engine, destination)


def budget_options(url: str, api_key: str, rate_limits, engine: Engine | None) -> dict:
    """``BrazeClient`` options that put a client under its destination's shared budget:
    the destination's ``rate_limits``, counted in ``engine`` when it is PostgreSQL."""
    return {
        "rate_limits": limits_from(rate_limits),
        "budget_counter": window_counter(engine, destination_key(url, api_key)),
    }


__all__ = ["MemoryWindows", "PostgresWindows", "budget_options", "rate_budgets", "window_counter"]
