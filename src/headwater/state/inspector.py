"""The event inspector's entries in the state store: what every serve process recorded,
readable by any of them and kept across restarts, bounded per stream (entries) and in all
(bytes). Payloads arrive here already cut and redacted (``headwater.runtime.inspector``):
the table never holds a secret field's value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    select,
)

from headwater.state.db import metadata

inspector_events = Table(
    "inspector_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("meta", Text, nullable=False),  # JSON: direction, bytes, outcomes, ...
    Column("payload", LargeBinary, nullable=False),  # JSON, redacted
    Column("size", Integer, nullable=False),
)
Index("ix_inspector_events_stream", inspector_events.c.stream, inspector_events.c.id)


def write_events(
    engine: Engine,
    entries: Sequence[tuple[str, dict[str, Any], bytes]],
    sizes: dict[str, int],
    max_bytes: int,
    default_size: int,
) -> None:
    """Add ``(stream, meta, payload)`` entries, then trim: each stream touched to its newest
    ``sizes[stream]`` entries, all streams together to ``max_bytes``."""
    if not entries:
        return
    rows = [
        {
            "stream": stream,
            "at": float(meta.get("at", 0.0)),
            "meta": orjson.dumps(meta).decode(),
            "payload": payload,
            "size": len(payload) + 200,
        }
        for stream, meta, payload in entries
    ]
    t = inspector_events
    with engine.begin() as conn:
        conn.execute(insert(t), rows)
        for stream in {stream for stream, _, _ in entries}:
            keep = max(0, sizes.get(stream, default_size))
            cutoff = conn.execute(
                select(t.c.id)
                .where(t.c.stream == stream)
                .order_by(t.c.id.desc())
                .limit(1)
                .offset(keep)
            ).scalar()
            if cutoff is not None:
                conn.execute(delete(t).where(t.c.stream == stream, t.c.id <= cutoff))
        total = conn.execute(select(func.coalesce(func.sum(t.c.size), 0))).scalar_one()
        if total > max_bytes:
            over, cutoff = total - max_bytes, None
            for row_id, size in conn.execute(select(t.c.id, t.c.size).order_by(t.c.id)):
                over -= size
                cutoff = row_id
                if over <= 0:
                    break
            conn.execute(delete(t).where(t.c.id <= cutoff))


def read_events(engine: Engine, stream: str, limit: int) -> list[dict[str, Any]]:
    """The stream's newest entries first (only that stream's)."""
    t = inspector_events
    query = select(t).where(t.c.stream == stream).order_by(t.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        {"seq": row.id, **orjson.loads(row.meta), "payload": orjson.loads(row.payload)}
        for row in rows
    ]
