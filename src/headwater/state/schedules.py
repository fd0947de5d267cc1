"""Scheduled slots and paused jobs.

A slot is one firing of one job, keyed by (job, slot) with a UNIQUE constraint: each
scheduler that sees the slot due tries to insert it, and only the insert that wins runs it.
So several ``serve`` processes on one PostgreSQL store run a slot exactly once without a
lease to renew, and a scheduler restarted mid-slot cannot run it a second time.

``schedule_jobs`` remembers, per job, when a scheduler first saw it (a slot before that was
never missed) and whether it is paused; both outlive restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from headwater.state.db import metadata

_ID = BigInteger().with_variant(Integer, "sqlite")
CLAIMED, DONE, SKIPPED = "claimed", "done", "skipped"

schedule_slots = Table(
    "schedule_slots",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("job", String(200), nullable=False),
    Column("slot", String(64), nullable=False),  # ISO UTC instant, or "after:<job>:<run id>"
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("run_id", _ID, nullable=True),
    UniqueConstraint("job", "slot", name="uq_schedule_slots_job_slot"),
)
Index("ix_schedule_slots_job_due", schedule_slots.c.job, schedule_slots.c.due_at)

schedule_jobs = Table(
    "schedule_jobs",
    metadata,
    Column("job", String(200), primary_key=True),
    Column("first_seen_at", DateTime(timezone=True), nullable=False),
    Column("paused", Boolean, nullable=False, default=False),
    Column("paused_at", DateTime(timezone=True), nullable=True),
)


@dataclass(frozen=True)
class SlotRecord:
    id: int
    job: str
    slot: str
    due_at: datetime
    status: str
    run_id: int | None


@dataclass(frozen=True)
class JobState:
    job: str
    first_seen_at: datetime
    paused: bool


def ensure_tables(engine: Engine) -> None:
    """Create these tables on a store opened before this module was imported."""
    metadata.create_all(engine, tables=[schedule_slots, schedule_jobs])


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _insert(engine: Engine, table: Table):
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def slot_key(due_at: datetime) -> str:
    return due_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def claim_slot(engine: Engine, job: str, slot: str, due_at: datetime, now: datetime) -> int | None:
    """Insert the slot; its id if this caller won it, None if someone already had."""
    statement = (
        _insert(engine, schedule_slots)
        .values(job=job, slot=slot, due_at=due_at, claimed_at=now, status=CLAIMED)
        .on_conflict_do_nothing(index_elements=["job", "slot"])
        .returning(schedule_slots.c.id)
    )
    with engine.begin() as conn:
        won = conn.execute(statement).scalar_one_or_none()
    return None if won is None else int(won)


def claim_slots(
    engine: Engine, wanted: list[tuple[str, str, datetime]], now: datetime
) -> dict[tuple[str, str], int]:
    """Claim many (job, slot, due_at) in one statement; return those this caller won."""
    if not wanted:
        return {}
    statement = (
        _insert(engine, schedule_slots)
        .values(
            [
                {"job": job, "slot": slot, "due_at": due, "claimed_at": now, "status": CLAIMED}
                for job, slot, due in wanted
            ]
        )
        .on_conflict_do_nothing(index_elements=["job", "slot"])
        .returning(schedule_slots.c.id, schedule_slots.c.job, schedule_slots.c.slot)
    )
    with engine.begin() as conn:
        rows = conn.execute(statement).all()
    return {(job, slot): int(slot_id) for slot_id, job, slot in rows}


def finish_slot(engine: Engine, slot_id: int, status: str, run_id: int | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(schedule_slots)
            .where(schedule_slots.c.id == slot_id)
            .values(status=status, run_id=run_id)
        )


def last_slots(engine: Engine) -> dict[str, SlotRecord]:
    """Each job's latest claimed slot."""
    latest = (
        select(schedule_slots.c.job, func.max(schedule_slots.c.id).label("id"))
        .group_by(schedule_slots.c.job)
        .subquery()
    )
    query = select(schedule_slots).join(latest, schedule_slots.c.id == latest.c.id)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return {
        row["job"]: SlotRecord(
            int(row["id"]),
            row["job"],
            row["slot"],
            _aware(row["due_at"]),
            row["status"],
            None if row["run_id"] is None else int(row["run_id"]),
        )  # fmt: skip
        for row in rows
    }


def register_jobs(engine: Engine, jobs: list[str], now: datetime) -> dict[str, JobState]:
    """Make sure every job has a row (first seen now if new); return them all."""
    if jobs:
        with engine.begin() as conn:
            conn.execute(
                _insert(engine, schedule_jobs)
                .values([{"job": j, "first_seen_at": now, "paused": False} for j in jobs])
                .on_conflict_do_nothing(index_elements=["job"])
            )
    return job_states(engine)


def job_states(engine: Engine) -> dict[str, JobState]:
    with engine.connect() as conn:
        rows = conn.execute(select(schedule_jobs)).mappings().all()
    return {
        row["job"]: JobState(row["job"], _aware(row["first_seen_at"]), bool(row["paused"]))
        for row in rows
    }


def paused_jobs(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(select(schedule_jobs.c.job).where(schedule_jobs.c.paused)).all()
    return {row[0] for row in rows}


def set_paused(engine: Engine, job: str, paused: bool, now: datetime | None = None) -> None:
    """Pause or resume ``job``; a job no scheduler has seen yet gets its row now."""
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            _insert(engine, schedule_jobs)
            .values(job=job, first_seen_at=now, paused=False)
            .on_conflict_do_nothing(index_elements=["job"])
        )
        conn.execute(
            update(schedule_jobs)
            .where(schedule_jobs.c.job == job)
            .values(paused=paused, paused_at=now if paused else None)
        )
