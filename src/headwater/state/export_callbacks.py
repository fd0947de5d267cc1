"""Braze's "your export is ready" callbacks, between ``serve`` (which receives them) and the
segment export waiting for its files (in serve's scheduler, or in a ``headwater export``
process of its own: the state store is what both see).

Each export is given a callback URL with a fresh random token; only the token's SHA-256 is
stored, so the state store never holds a URL that would be accepted. A callback for a
token never issued (or already forgotten) is refused.
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import Column, Engine, Float, String, Table, delete, select, update

from headwater.state.db import metadata

KEEP_SECONDS = 2 * 86_400.0  # issued tokens an export never forgot (a killed run)

export_callbacks = Table(
    "export_callbacks",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("issued_at", Float, nullable=False),
    Column("received_at", Float, nullable=True),
)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(engine: Engine, token: str, now: float | None = None) -> None:
    now = time.time() if now is None else now
    with engine.begin() as conn:
        conn.execute(
            delete(export_callbacks).where(export_callbacks.c.issued_at < now - KEEP_SECONDS)
        )
        conn.execute(export_callbacks.insert().values(token_hash=_hash(token), issued_at=now))


def receive(engine: Engine, token: str, now: float | None = None) -> bool:
    """Record the callback; False when the token was never issued."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        result = conn.execute(
            update(export_callbacks)
            .where(export_callbacks.c.token_hash == _hash(token))
            .values(received_at=now)
        )
    return result.rowcount == 1


def arrived(engine: Engine, token: str) -> bool:
    query = select(export_callbacks.c.received_at).where(
        export_callbacks.c.token_hash == _hash(token)
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar() is not None


def forget(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(export_callbacks).where(export_callbacks.c.token_hash == _hash(token)))
