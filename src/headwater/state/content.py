"""Connected Content: the latest content attributes per user (a share link, a share code),
kept from stream events so a Braze message can fetch them at send time with
``{% connected_content https://hub/content/extole/{{${user_id}}} :headers {...} %}``.

Values are committed with the events that carried them (same transaction as the outbox),
and served from a small in-process cache in front of the state store, so a send burst of
thousands of requests a second does not queue on the database.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import orjson
from sqlalchemy import Column, Engine, Float, LargeBinary, String, Table, select

from headwater.state.db import metadata

CACHE_SECONDS = 5.0  # how stale a value written by another serve process may be
CACHE_USERS = 100_000

content_values = Table(
    "stream_content",
    metadata,
    Column("stream", String(200), primary_key=True),
    Column("user_id", String(1000), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("updated_at", Float, nullable=False),
)
CONTENT_KEY = ("stream", "user_id", "name")


class ContentStore:
    """Read side: cache in front of ``stream_content``; ``remember`` is called after each
    commit so this process serves its own writes at once."""

    def __init__(self, engine: Engine, cache_seconds: float = CACHE_SECONDS) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[tuple[str, str], tuple[float, dict]] = OrderedDict()

    def remember(self, rows: list[dict]) -> None:
        for row in rows:
            key = (row["stream"], row["user_id"])
            cached = self._cache.get(key)
            if cached is not None:
                cached[1][row["name"]] = orjson.loads(row["value"])
                self._cache[key] = (time.monotonic() + self._cache_seconds, cached[1])

    def get(self, stream: str, user_id: str) -> dict | None:
        key = (stream, user_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            self._cache.move_to_end(key)
            return cached[1]
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(content_values.c.name, content_values.c.value).where(
                    content_values.c.stream == stream, content_values.c.user_id == user_id
                )
            ).all()
        if not rows:
            self._cache.pop(key, None)
            return None
        data = {name: orjson.loads(value) for name, value in rows}
        self._cache[key] = (time.monotonic() + self._cache_seconds, data)
        if len(self._cache) > CACHE_USERS:
            self._cache.popitem(last=False)
        return data
