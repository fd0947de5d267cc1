"""Paused streams: intake goes on, delivery waits.

A paused stream's partners see no change (the gateway and webhooks still answer 2xx and
commit to the outbox); its outbox rows are *held*: their ``available_at`` is moved
``HELD`` seconds into the future, out of the range the delivery claim reads through
``ix_outbox_claim``, so a million held objects cost the claim nothing. Resuming moves
them back (``ix_outbox_stream``) and delivery takes them in id order, as it would have.

The claim also refuses a paused stream's rows outright (``NOT_PAUSED``), so a row that
escaped holding (written by a process whose view of the pauses was a second old, or
given back by a round in flight at the pause) is never delivered either; each process
holds such rows itself when it next reads the pauses (``Outbox``).

A pause names a stream as the console and the CLI do: a configured stream, or
``gateway`` for every partner key of ``/users/track`` (outbox streams ``gateway:KEY``).
It lives in the state store, so it holds across restarts and every ``serve`` process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Engine, String, Table, bindparam, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite

from headwater.state.db import metadata

HELD = 1e12  # seconds added to a held row's available_at (no ready row is that far off)
FAMILY = ":"  # ``gateway:KEY`` belongs to the stream ``gateway``

stream_pauses = Table(
    "stream_pauses",
    metadata,
    Column("stream", String(200), primary_key=True),
    Column("paused_at", DateTime(timezone=True), nullable=False),
    Column("paused_by", String(200), nullable=True),
)

# For the claim, per outbox row (the pauses table holds a handful of rows).
NOT_PAUSED = (
    "NOT EXISTS (SELECT 1 FROM stream_pauses p WHERE outbox.stream = p.stream"
    " OR substr(outbox.stream, 1, length(p.stream) + 1) = p.stream || ':')"
)

# The outbox's distinct streams, by hopping along ``ix_outbox_stream`` (a loose index
# scan: one lookup per stream, however many rows each has). A stream's family is then
# picked in Python and its rows reached by equality, which no collation can bend (a range
# "gateway:" < s < "gateway;" is not one under PostgreSQL's linguistic collations).
_STREAMS = text(
    "WITH RECURSIVE s(stream) AS ("
    " SELECT min(stream) FROM outbox"
    " UNION ALL"
    " SELECT (SELECT min(stream) FROM outbox WHERE outbox.stream > s.stream)"
    " FROM s WHERE s.stream IS NOT NULL"
    ") SELECT stream FROM s"
)
_HOLD = text(
    f"UPDATE outbox SET available_at = available_at + {HELD!r} "
    f"WHERE stream IN :streams AND available_at < {HELD!r}"
).bindparams(bindparam("streams", expanding=True))
_RELEASE = text(
    f"UPDATE outbox SET available_at = available_at - {HELD!r} "
    f"WHERE stream IN :streams AND available_at >= {HELD!r}"
).bindparams(bindparam("streams", expanding=True))
_COUNT_HELD = text(
    "SELECT count(*) FROM (SELECT 1 FROM outbox WHERE stream = :stream "
    f"AND available_at >= {HELD!r} LIMIT :cap) AS held"
)


@dataclass(frozen=True)
class Pause:
    stream: str
    paused_at: datetime
    paused_by: str | None


def is_paused(stream: str, paused: frozenset[str] | set[str]) -> bool:
    """Whether outbox stream ``stream`` (``gateway:KEY`` included) is held by ``paused``."""
    return stream in paused or stream.split(FAMILY, 1)[0] in paused


def _members(conn, stream: str) -> list[str]:
    """The outbox streams ``stream`` names: itself and, for ``gateway``, each key's."""
    return [s for s in conn.execute(_STREAMS).scalars() if s and is_paused(s, {stream})]


def hold(conn, stream: str) -> int:
    """Move the stream's ready rows out of the claim's range; return how many moved."""
    members = _members(conn, stream)
    return conn.execute(_HOLD, {"streams": members}).rowcount if members else 0


def release(conn, stream: str) -> int:
    """Bring the stream's held rows back, with the times they had (order is by id)."""
    members = _members(conn, stream)
    return conn.execute(_RELEASE, {"streams": members}).rowcount if members else 0


def read_paused(conn) -> frozenset[str]:
    return frozenset(conn.execute(select(stream_pauses.c.stream)).scalars())


def list_pauses(engine: Engine) -> dict[str, Pause]:
    with engine.connect() as conn:
        rows = conn.execute(select(stream_pauses)).all()
    return {r.stream: Pause(r.stream, _aware(r.paused_at), r.paused_by) for r in rows}


def held_rows(engine: Engine, stream: str, cap: int = 10_000) -> int:
    """Held outbox rows of the stream, counted up to ``cap`` (a page never counts more)."""
    total = 0
    with engine.connect() as conn:
        for member in _members(conn, stream):
            total += int(conn.execute(_COUNT_HELD, {"stream": member, "cap": cap}).scalar_one())
            if total >= cap:
                return cap
    return total


def pause_stream(engine: Engine, stream: str, by: str | None = None) -> int:
    """Pause ``stream`` and hold its rows; idempotent. Returns the rows held now."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    with engine.begin() as conn:
        conn.execute(
            insert(stream_pauses)
            .values(stream=stream, paused_at=datetime.now(UTC), paused_by=by)
            .on_conflict_do_nothing(index_elements=["stream"])
        )
        return hold(conn, stream)


def resume_stream(engine: Engine, stream: str) -> int:
    """Resume ``stream``: its held rows become ready again. Returns how many."""
    with engine.begin() as conn:
        conn.execute(delete(stream_pauses).where(stream_pauses.c.stream == stream))
        return release(conn, stream)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
