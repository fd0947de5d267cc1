"""Parked messages: objects Braze rejected, or that failed too many times to keep trying.

A dead letter keeps the object exactly as it would be sent plus the reason, so a user can
read why it failed, fix the cause (a key, a permission, a mapping) and replay it: replay
puts the object back in the outbox (a row of one) and marks the letter replayed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    select,
    update,
)

from headwater.state import pauses
from headwater.state.db import metadata
from headwater.state.outbox import OutboxRow, outbox

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer, nullable=True),
    Column("stream", String(200), nullable=False),
    Column("destination", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("options", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("parked_at", Float, nullable=False),
    Column("replayed_at", Float, nullable=True),
)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    stream: str
    destination: str
    kind: str
    payload: bytes
    reason: str
    attempts: int
    parked_at: float
    replayed_at: float | None


def park_objects(conn, letters: Sequence[tuple[OutboxRow, bytes, str]]) -> None:
    """Park objects of outbox rows (row, the object's JSON, reason) inside the caller's
    transaction; the caller removes them from the outbox in the same transaction."""
    if not letters:
        return
    now = time.time()
    conn.execute(
        dead_letters.insert(),
        [
            {
                "outbox_id": row.id,
                "stream": row.stream,
                "destination": row.destination,
                "kind": row.kind,
                "payload": line,
                "options": row.options,
                "reason": reason[:4000],
                "attempts": row.attempts + 1,
                "parked_at": now,
            }
            for row, line, reason in letters
        ],
    )


def list_dead_letters(
    engine: Engine,
    *,
    stream: str | None = None,
    include_replayed: bool = False,
    limit: int = 100,
    after: int = 0,
) -> list[DeadLetter]:
    """Oldest first; ``after``: only ids above it (the next page)."""
    query = select(dead_letters).order_by(dead_letters.c.id).limit(limit)
    if after:
        query = query.where(dead_letters.c.id > after)
    if stream:
        query = query.where(dead_letters.c.stream == stream)
    if not include_replayed:
        query = query.where(dead_letters.c.replayed_at.is_(None))
    with engine.connect() as conn:
        return [
            DeadLetter(
                r.id,
                r.stream,
                r.destination,
                r.kind,
                r.payload,
                r.reason,
                r.attempts,
                r.parked_at,
                r.replayed_at,
            )  # fmt: skip
            for r in conn.execute(query)
        ]


def replay_dead_letters(engine: Engine, ids: Sequence[int] | None = None) -> int:
    """Put letters back in the outbox (all unreplayed ones when ``ids`` is None); returns
    how many were replayed. Replayed letters stay listed with ``--all`` for the record."""
    now = time.time()
    query = select(dead_letters).where(dead_letters.c.replayed_at.is_(None))
    if ids is not None:
        query = query.where(dead_letters.c.id.in_(list(ids)))
    with engine.begin() as conn:
        letters = conn.execute(query).all()
        if not letters:
            return 0
        paused = pauses.read_paused(conn)  # a paused stream's letters go back held
        conn.execute(
            outbox.insert(),
            [
                {
                    "stream": r.stream,
                    "destination": r.destination,
                    "kind": r.kind,
                    "payload": r.payload,
                    "objects": 1,
                    "options": r.options,
                    "enqueued_at": now,
                    "available_at": now + pauses.HELD
                    if pauses.is_paused(r.stream, paused)
                    else now,
                    "attempts": 0,
                }
                for r in letters
            ],
        )
        conn.execute(
            update(dead_letters)
            .where(dead_letters.c.id.in_([r.id for r in letters]))
            .values(replayed_at=now)
        )
    return len(letters)


def count_dead_letters(engine: Engine, stream: str | None = None) -> int:
    from sqlalchemy import func

    query = (
        select(func.count()).select_from(dead_letters).where(dead_letters.c.replayed_at.is_(None))
    )
    if stream:
        query = query.where(dead_letters.c.stream == stream)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
