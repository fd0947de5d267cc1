"""Per-stream counters that must survive restarts and add up across serve processes:
objects delivered, data points saved by attribute de-duplication, duplicates dropped,
objects parked. Increments are folded into the caller's transaction."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import BigInteger, Column, Engine, String, Table, select

from headwater.state.db import metadata

stream_counters = Table(
    "stream_counters",
    metadata,
    Column("stream", String(200), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False, default=0),
)


class Counters:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        mark = "%s" if engine.dialect.name == "postgresql" else "?"
        self._upsert_sql = (
            f"INSERT INTO stream_counters (stream, name, value) VALUES ({mark}, {mark}, {mark}) "
            "ON CONFLICT (stream, name) DO UPDATE "
            "SET value = stream_counters.value + excluded.value"
        )

    def add(self, increments: Counter, conn=None) -> None:
        """``increments`` maps (stream, name) -> amount."""
        items = [(k, v) for k, v in increments.items() if v]
        if not items:
            return
        if conn is None:
            with self.engine.begin() as conn:
                self._add(conn, items)
        else:
            self._add(conn, items)

    def _add(self, conn, items) -> None:
        # Driver SQL, built once: this runs in every delivery settle, on the writer thread
        # that intake commits also wait for, and building the upsert each time cost more
        # than running it.
        conn.exec_driver_sql(self._upsert_sql, [(s, n, v) for (s, n), v in sorted(items)])

    def read(self, stream: str | None = None) -> dict[str, dict[str, int]]:
        query = select(stream_counters)
        if stream is not None:
            query = query.where(stream_counters.c.stream == stream)
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                out.setdefault(row.stream, {})[row.name] = int(row.value)
        return out


__all__ = ["Counters", "stream_counters"]
