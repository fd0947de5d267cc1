"""The trigger ledger: each (trigger, entry) is sent at most once, ever.

Braze has no idempotency key for campaign and canvas sends, so exactly-once is ours:

1. **claim** - a row keyed (trigger, entry_key) is inserted, ``claimed``, in its own
   transaction *before* the request leaves. The key is the primary key: of two
   processes (or threads, or a restarted process) presenting the same entry, one insert
   wins and only the winner sends.
2. **send** - one request for up to 50 claimed entries.
3. **record** - after Braze answered 2xx, the rows become ``sent`` with the dispatch_id.
   A refusal that proves nothing was sent (400, 429/502/503 after retries, a bad
   template) makes them ``failed``: presenting the entry again re-claims and resends it.

The one window is between 2 and 3: a process killed there leaves rows ``claimed`` that
may or may not have been sent. They are never resent (a person must not get the message
twice); ``sweep_stale`` turns claims older than the lease into ``in_doubt`` and every
reader counts them, so the window is bounded (one request, at most 50 people per
process) and visible (``headwater triggers``). Sends whose answer never came
(timeouts, 500/504) are ``in_doubt`` straight away, for the same reason.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from headwater.state.db import metadata

CLAIMED = "claimed"
SENT = "sent"
FAILED = "failed"
IN_DOUBT = "in_doubt"
STATUSES = (CLAIMED, SENT, FAILED, IN_DOUBT)
# A claim older than this with no answer recorded is from a process that stopped between
# sending and recording (a send takes seconds; its retries well under this).
DEFAULT_LEASE_SECONDS = 600.0
MAX_ERROR_CHARS = 500

trigger_sends = Table(
    "trigger_sends",
    metadata,
    Column("trigger", String(200), primary_key=True),
    Column("entry_key", String(500), primary_key=True),
    Column("person_id", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("claim", String(36), nullable=False),  # the claiming call's token
    Column("claimed_at", Float, nullable=False),
    Column("answered_at", Float, nullable=True),
    Column("dispatch_id", String(100), nullable=True),
    Column("error", Text, nullable=True),
)
Index("trigger_sends_status", trigger_sends.c.trigger, trigger_sends.c.status)


@dataclass(frozen=True)
class Entry:
    entry_key: str
    person_id: str


def _insert(engine: Engine):
    return (postgresql if engine.dialect.name == "postgresql" else sqlite).insert(trigger_sends)


def claim(
    engine: Engine, trigger: str, entries: Iterable[Entry], now: float | None = None
) -> tuple[str, set[str]]:
    """Claim entries not claimed before (or whose last attempt failed with nothing sent).
    Returns (token, the entry keys this call now owns): only those may be sent."""
    token = str(uuid.uuid4())
    now = time.time() if now is None else now
    rows = [
        {"trigger": trigger, "entry_key": e.entry_key, "person_id": e.person_id,
         "status": CLAIMED, "claim": token, "claimed_at": now}
        for e in entries
    ]  # fmt: skip
    if not rows:
        return token, set()
    stmt = _insert(engine)
    stmt = stmt.on_conflict_do_update(
        index_elements=[trigger_sends.c.trigger, trigger_sends.c.entry_key],
        set_={"status": CLAIMED, "claim": token, "claimed_at": now, "error": None,
              "answered_at": None},
        where=trigger_sends.c.status == FAILED,
    )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(stmt, rows)
        owned = conn.execute(
            select(trigger_sends.c.entry_key).where(
                and_(
                    trigger_sends.c.trigger == trigger,
                    trigger_sends.c.claim == token,
                    trigger_sends.c.status == CLAIMED,
                )
            )
        )
        return token, {key for (key,) in owned}


def record(
    engine: Engine,
    trigger: str,
    token: str,
    keys: Iterable[str],
    status: str,
    *,
    dispatch_id: str | None = None,
    error: str | None = None,
    now: float | None = None,
) -> None:
    """Close this call's claims with Braze's answer (or why there was none)."""
    if status not in (SENT, FAILED, IN_DOUBT):
        raise ValueError(f"cannot record {status!r}")
    keys = list(keys)
    if not keys:
        return
    with engine.begin() as conn:
        conn.execute(
            update(trigger_sends)
            .where(
                and_(
                    trigger_sends.c.trigger == trigger,
                    trigger_sends.c.claim == token,
                    trigger_sends.c.entry_key.in_(keys),
                )
            )
            .values(
                status=status,
                answered_at=time.time() if now is None else now,
                dispatch_id=dispatch_id,
                error=None if error is None else error[:MAX_ERROR_CHARS],
            )
        )


def fail_unclaimed(
    engine: Engine, trigger: str, failures: Iterable[tuple[Entry, str]], now: float | None = None
) -> None:
    """Record entries that could not be sent before anything left (a template error,
    properties over 50 KB) as failed, unless already claimed or sent by someone."""
    now = time.time() if now is None else now
    rows = [
        {"trigger": trigger, "entry_key": e.entry_key, "person_id": e.person_id,
         "status": FAILED, "claim": "-", "claimed_at": now, "answered_at": now,
         "error": reason[:MAX_ERROR_CHARS]}
        for e, reason in failures
    ]  # fmt: skip
    if not rows:
        return
    stmt = _insert(engine)
    stmt = stmt.on_conflict_do_update(
        index_elements=[trigger_sends.c.trigger, trigger_sends.c.entry_key],
        set_={"error": stmt.excluded.error, "answered_at": now},
        where=trigger_sends.c.status == FAILED,
    )
    with engine.begin() as conn:
        conn.execute(stmt, rows)


def sweep_stale(
    engine: Engine, lease_seconds: float = DEFAULT_LEASE_SECONDS, now: float | None = None
) -> int:
    """Claims older than the lease, never answered: a process stopped between sending
    and recording. Mark them in doubt (never resent); return how many."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        result = conn.execute(
            update(trigger_sends)
            .where(
                and_(
                    trigger_sends.c.status == CLAIMED,
                    trigger_sends.c.claimed_at < now - lease_seconds,
                )
            )
            .values(
                status=IN_DOUBT,
                answered_at=now,
                error="no answer recorded: the process stopped between sending and recording",
            )
        )
        return result.rowcount or 0


def counts(engine: Engine) -> dict[str, dict[str, int]]:
    """Per trigger: how many entries are claimed, sent, failed, in doubt."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(trigger_sends.c.trigger, trigger_sends.c.status, func.count()).group_by(
                trigger_sends.c.trigger, trigger_sends.c.status
            )
        )
        for trigger, status, count in rows:
            out.setdefault(trigger, dict.fromkeys(STATUSES, 0))[status] = int(count)
    return out


def entries(engine: Engine, trigger: str, status: str | None = None, limit: int = 100) -> list:
    """The ledger's rows for one trigger, newest first (for the CLI and tests)."""
    query = select(trigger_sends).where(trigger_sends.c.trigger == trigger)
    if status is not None:
        query = query.where(trigger_sends.c.status == status)
    query = query.order_by(trigger_sends.c.claimed_at.desc()).limit(limit)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


# -- the event-trigger inbox ----------------------------------------------------------------
# Delivered events that match an event trigger, written in the same transaction as the
# outbox acknowledges them (``headwater.delivery.worker``): an event accepted by Braze is
# never lost to its trigger, whatever stops when. ``headwater.triggers.pump`` drains it;
# the ledger above keeps each (trigger, event) to one send even if a row is drained twice.

trigger_inbox = Table(
    "trigger_inbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("trigger", String(200), nullable=False),
    Column("entry_key", String(500), nullable=False),  # outbox:<message id>:<index>
    Column("event", LargeBinary, nullable=False),  # the event object as delivered (JSON)
    Column("enqueued_at", Float, nullable=False),
)  # fmt: skip


def enqueue_events(conn, rows: list[tuple[str, str, bytes]], now: float | None = None) -> None:
    """Inside the caller's transaction: (trigger, entry key, event JSON) to fire."""
    if rows:
        now = time.time() if now is None else now
        conn.execute(
            trigger_inbox.insert(),
            [{"trigger": t, "entry_key": k, "event": e, "enqueued_at": now} for t, k, e in rows],
        )


def take_inbox(engine: Engine, limit: int = 500) -> list[tuple[int, str, str, bytes]]:
    """The oldest inbox rows: (id, trigger, entry key, event JSON)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(trigger_inbox.c.id, trigger_inbox.c.trigger, trigger_inbox.c.entry_key,
                   trigger_inbox.c.event).order_by(trigger_inbox.c.id).limit(limit)
        )  # fmt: skip
        return [tuple(r) for r in rows]


def drop_inbox(engine: Engine, ids: list[int]) -> None:
    if ids:
        with engine.begin() as conn:
            conn.execute(trigger_inbox.delete().where(trigger_inbox.c.id.in_(ids)))
