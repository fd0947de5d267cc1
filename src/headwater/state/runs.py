"""Run records: every sync or export run leaves a row a user can read afterwards.

A run row holds its counts (added, changed, removed, unchanged, rejected, failed, sent),
requests, data points, duration and the error that stopped it; row-level errors go to
their own table, all of them kept, read a page at a time.

A process killed mid-run cannot write "failed", so a run row also carries who runs it
(host and pid) and a heartbeat refreshed by ``record_progress``. A run still marked
running is *interrupted* when its process is gone (same host, pid dead or reused) or, on
another host where pids mean nothing, when its heartbeat is older than
``STALE_HEARTBEAT_SECONDS``. Readers show such runs as interrupted at once;
``mark_interrupted`` writes it down.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psutil
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from headwater.errors import RowError
from headwater.state.db import metadata

STALE_HEARTBEAT_SECONDS = 600.0
MAX_REASON_CHARS = 2000
MAX_VALUE_CHARS = 500  # an offending value is kept cut to this (searchable, indexable)
RUNNING, SUCCEEDED, PARTIAL, FAILED, INTERRUPTED, SKIPPED = (
    "running",
    "succeeded",
    "partial",
    "failed",
    "interrupted",
    "skipped",  # a scheduled slot not run, because the job was still running: see ``error``
)
STATUSES = (RUNNING, SUCCEEDED, PARTIAL, FAILED, INTERRUPTED, SKIPPED)
COUNTS = (
    "added",
    "changed",
    "removed",
    "unchanged",
    "rejected",
    "failed",
    "sent",
    "requests",
    "data_points",
    "data_points_saved",  # not spent: unchanged attributes the diff left out
)

_ID = BigInteger().with_variant(Integer, "sqlite")

runs = Table(
    "runs",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("sync", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("duration_seconds", Float, nullable=True),
    *(Column(name, BigInteger, nullable=False, default=0) for name in COUNTS),
    Column("error", Text, nullable=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)
Index("ix_runs_sync_started", runs.c.sync, runs.c.started_at)
Index("ix_runs_status", runs.c.status)

run_row_errors = Table(
    "run_row_errors",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("run_id", _ID, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("row_key", Text, nullable=True),
    Column("field", String(255), nullable=True),
    Column("reason", Text, nullable=False),
    Column("value", Text, nullable=True),  # the offending value as text, cut; NULL: unknown
)
Index("ix_run_row_errors_run", run_row_errors.c.run_id, run_row_errors.c.id)


@dataclass(frozen=True)
class RowErrorRecord:
    """One row a run could not deliver, and why."""

    row_key: str | None
    field: str | None
    reason: str
    value: str | None = None  # what was offending, as text (cut to MAX_VALUE_CHARS)


@dataclass(frozen=True)
class RunRecord:
    id: int
    sync: str
    kind: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    counts: dict[str, int]
    error: str | None
    host: str
    pid: int
    heartbeat_at: datetime
    row_error_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the REST API and ``--json`` output."""
        out = asdict(self)
        for name in ("started_at", "finished_at", "heartbeat_at"):
            value = out[name]
            out[name] = value.isoformat() if value else None
        return out


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _check_counts(counts: Mapping[str, int]) -> dict[str, int]:
    unknown = set(counts) - set(COUNTS)
    if unknown:
        raise ValueError(f"unknown run counts: {sorted(unknown)}; known: {list(COUNTS)}")
    return {name: int(value) for name, value in counts.items()}


def start_run(engine: Engine, sync: str, kind: str = "sync") -> int:
    """Record a run as started by this process; return its id."""
    now = _now()
    with engine.begin() as conn:
        result = conn.execute(
            insert(runs).values(
                sync=sync,
                kind=kind,
                status=RUNNING,
                started_at=now,
                heartbeat_at=now,
                host=socket.gethostname(),
                pid=os.getpid(),
                **dict.fromkeys(COUNTS, 0),
            )
        )
        return int(result.inserted_primary_key[0])


def record_skipped(engine: Engine, sync: str, reason: str, kind: str = "sync") -> int:
    """Leave a ``skipped`` run in the history: a slot that came due and did not run, and
    why (the run still in progress), so a gap in the runs explains itself."""
    now = _now()
    with engine.begin() as conn:
        result = conn.execute(
            insert(runs).values(
                sync=sync, kind=kind, status=SKIPPED, started_at=now, finished_at=now,
                duration_seconds=0.0, heartbeat_at=now, error=reason[:MAX_REASON_CHARS],
                host=socket.gethostname(), pid=os.getpid(), **dict.fromkeys(COUNTS, 0),
            )
        )  # fmt: skip
        return int(result.inserted_primary_key[0])


def record_progress(engine: Engine, run_id: int, **counts: int) -> None:
    """Store the run's running totals (absolute values, so a retry is harmless) and beat."""
    values = _check_counts(counts)
    with engine.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(heartbeat_at=_now(), **values))


def add_row_errors(
    engine: Engine,
    run_id: int,
    errors: Iterable[RowErrorRecord | RowError | Mapping[str, Any] | tuple],
) -> int:
    """Store row-level errors (all of them; readers page). Return how many were stored.

    Accepts ``RowErrorRecord``, ``headwater.errors.RowError``, mappings with
    ``row_key``/``field``/``reason`` (and ``value``), or ``(row_key, field, reason)``
    tuples (and a value). The caller leaves out values that are secret.
    """
    rows = [
        {
            "run_id": run_id,
            "row_key": None if e.row_key is None else str(e.row_key),
            "field": e.field,
            "reason": e.reason[:MAX_REASON_CHARS],
            "value": value_text(e.value),
        }
        for e in map(_as_row_error, errors)
    ]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(run_row_errors), rows)
    return len(rows)


def _as_row_error(error: Any) -> RowErrorRecord:
    if isinstance(error, RowErrorRecord):
        return error
    if isinstance(error, RowError):
        return RowErrorRecord(error.row, error.field, error.reason, error.value)
    if isinstance(error, Mapping):
        return RowErrorRecord(
            error.get("row_key"), error.get("field"), str(error["reason"]), error.get("value")
        )
    row_key, field_name, reason, *value = error
    return RowErrorRecord(row_key, field_name, str(reason), value[0] if value else None)


def value_text(value: Any) -> str | None:
    """An offending value as stored: text (JSON for anything structured), cut short."""
    if value is None:
        return None
    if not isinstance(value, str):
        try:
            value = orjson.dumps(value, default=str).decode()
        except TypeError:
            value = repr(value)
    return value if len(value) <= MAX_VALUE_CHARS else value[: MAX_VALUE_CHARS - 1] + "…"


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    status: str | None = None,
    error: str | None = None,
    **counts: int,
) -> str:
    """Close the run with its final totals; return the status written.

    Without an explicit ``status``: failed when ``error`` is given, partial when some rows
    were rejected or failed, succeeded otherwise.
    """
    values = _check_counts(counts)
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}; known: {list(STATUSES)}")
    now = _now()
    with engine.begin() as conn:
        row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().one_or_none()
        if row is None:
            raise ValueError(f"no run with id {run_id}")
        if status is None:
            merged = {name: row[name] for name in COUNTS} | values
            if error:
                status = FAILED
            elif merged["rejected"] or merged["failed"]:
                status = PARTIAL
            else:
                status = SUCCEEDED
        started = _aware(row["started_at"])
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(
                status=status,
                finished_at=now,
                heartbeat_at=now,
                duration_seconds=(now - started).total_seconds(),
                error=error,
                **values,
            )
        )
    return status


def _is_dead(host: str, pid: int, started_at: datetime, heartbeat_at: datetime) -> bool:
    if host == socket.gethostname():
        try:
            process = psutil.Process(pid)
            # A pid reused by a process started after the run is not the run's process.
            return process.create_time() > started_at.timestamp() + 1.0
        except psutil.NoSuchProcess:
            return True
    stale_before = _now() - timedelta(seconds=STALE_HEARTBEAT_SECONDS)
    return heartbeat_at < stale_before


def _record(row: Mapping[str, Any], error_count: int = 0) -> RunRecord:
    started, heartbeat = _aware(row["started_at"]), _aware(row["heartbeat_at"])
    status = row["status"]
    if status == RUNNING and _is_dead(row["host"], row["pid"], started, heartbeat):
        status = INTERRUPTED
    return RunRecord(
        id=int(row["id"]),
        sync=row["sync"],
        kind=row["kind"],
        status=status,
        started_at=started,
        finished_at=_aware(row["finished_at"]),
        duration_seconds=row["duration_seconds"],
        counts={name: int(row[name]) for name in COUNTS},
        error=row["error"],
        host=row["host"],
        pid=int(row["pid"]),
        heartbeat_at=heartbeat,
        row_error_count=error_count,
    )


def list_runs(engine: Engine, limit: int = 50, sync: str | None = None) -> list[RunRecord]:
    """Newest first. Runs whose process died show as interrupted."""
    query = select(runs).order_by(runs.c.id.desc()).limit(limit)
    if sync is not None:
        query = query.where(runs.c.sync == sync)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        ids = [row["id"] for row in rows]
        counts = dict(
            conn.execute(
                select(run_row_errors.c.run_id, func.count())
                .where(run_row_errors.c.run_id.in_(ids))
                .group_by(run_row_errors.c.run_id)
            ).all()
        )
    return [_record(row, counts.get(row["id"], 0)) for row in rows]


def get_run(engine: Engine, run_id: int) -> RunRecord | None:
    with engine.connect() as conn:
        row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().one_or_none()
        if row is None:
            return None
        count = conn.execute(
            select(func.count()).where(run_row_errors.c.run_id == run_id)
        ).scalar_one()
    return _record(row, count)


def row_errors(
    engine: Engine, run_id: int, limit: int = 100, offset: int = 0
) -> list[RowErrorRecord]:
    """One page of a run's row errors, in the order they were recorded."""
    query = (
        select(
            run_row_errors.c.row_key,
            run_row_errors.c.field,
            run_row_errors.c.reason,
            run_row_errors.c.value,
        )
        .where(run_row_errors.c.run_id == run_id)
        .order_by(run_row_errors.c.id)
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as conn:
        return [RowErrorRecord(*row) for row in conn.execute(query).all()]


def running_runs(engine: Engine) -> dict[str, int]:
    """Each sync with a run in progress (its process alive) -> that run's id."""
    with engine.connect() as conn:
        rows = conn.execute(select(runs).where(runs.c.status == RUNNING)).mappings().all()
    return {row["sync"]: int(row["id"]) for row in rows if _record(row).status == RUNNING}


def last_succeeded(engine: Engine, syncs: Iterable[str]) -> dict[str, int]:
    """Each of ``syncs`` -> the id of its latest run that finished succeeded or partial."""
    names = list(syncs)
    if not names:
        return {}
    query = (
        select(runs.c.sync, func.max(runs.c.id))
        .where(runs.c.sync.in_(names), runs.c.status.in_((SUCCEEDED, PARTIAL)))
        .group_by(runs.c.sync)
    )
    with engine.connect() as conn:
        return {sync: int(run_id) for sync, run_id in conn.execute(query).all()}


def mark_interrupted(engine: Engine) -> list[int]:
    """Write ``interrupted`` on runs left running by dead processes; return their ids."""
    with engine.connect() as conn:
        rows = conn.execute(select(runs).where(runs.c.status == RUNNING)).mappings().all()
    dead = [row["id"] for row in rows if _record(row).status == INTERRUPTED]
    if dead:
        now = _now()
        with engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id.in_(dead), runs.c.status == RUNNING)
                .values(status=INTERRUPTED, finished_at=now, error="the run's process stopped")
            )
    return dead
