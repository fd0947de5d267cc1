"""Which slots each split of an audience holds, and the salt the slots were drawn with.

A person's slot (0-9,999) comes from hashing their id with the audience's salt; which
split a slot belongs to is written here the first time the audience runs and only ever
edited, range by range, when shares change (``headwater.audiences.splits.allocate``).
Kept in the state store, beside the runs: a few rows per audience that the CLI lists, and
that survive a rebuilt warehouse. So are the members per split as the last run left them
(``audience_sizes``), for the console to show without opening the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
)

from headwater.state.db import metadata

audience_slots = Table(
    "audience_slots",
    metadata,
    Column("audience", String(200), primary_key=True),
    Column("first_slot", Integer, primary_key=True),
    Column("last_slot", Integer, nullable=False),  # inclusive
    Column("split", String(100), nullable=False),
)

audience_salts = Table(
    "audience_salts",
    metadata,
    Column("audience", String(200), primary_key=True),
    Column("salt", String(1000), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

audience_sizes = Table(
    "audience_sizes",
    metadata,
    Column("audience", String(200), primary_key=True),
    Column("split", String(100), primary_key=True),
    Column("members", BigInteger, nullable=False),
    Column("run_id", BigInteger, nullable=True),
    Column("measured_at", DateTime(timezone=True), nullable=False),
)

Ranges = dict[str, list[tuple[int, int]]]  # split -> [(first, last)] inclusive, sorted


@dataclass(frozen=True)
class Allocation:
    salt: str | None
    ranges: Ranges


def load_allocation(engine: Engine, audience: str) -> Allocation:
    """The audience's slots as last saved (empty ranges and no salt before its first run)."""
    with engine.connect() as conn:
        salt = conn.execute(
            select(audience_salts.c.salt).where(audience_salts.c.audience == audience)
        ).scalar_one_or_none()
        rows = conn.execute(
            select(audience_slots.c.split, audience_slots.c.first_slot, audience_slots.c.last_slot)
            .where(audience_slots.c.audience == audience)
            .order_by(audience_slots.c.first_slot)
        ).all()
    ranges: Ranges = {}
    for split, first, last in rows:
        ranges.setdefault(split, []).append((int(first), int(last)))
    return Allocation(salt, ranges)


def save_allocation(engine: Engine, audience: str, allocation: Allocation) -> None:
    """Replace the audience's slots and salt, in one transaction."""
    rows = [
        {"audience": audience, "split": split, "first_slot": first, "last_slot": last}
        for split, spans in allocation.ranges.items()
        for first, last in spans
    ]
    with engine.begin() as conn:
        conn.execute(delete(audience_slots).where(audience_slots.c.audience == audience))
        conn.execute(delete(audience_salts).where(audience_salts.c.audience == audience))
        if rows:
            conn.execute(insert(audience_slots), rows)
        if allocation.salt is not None:
            conn.execute(
                insert(audience_salts).values(
                    audience=audience, salt=allocation.salt, updated_at=datetime.now(UTC)
                )
            )


@dataclass(frozen=True)
class Sizes:
    """Members per split (the holdout included) after an audience's last run."""

    members: dict[str, int]
    run_id: int | None
    measured_at: datetime


def save_sizes(engine: Engine, audience: str, sizes: dict[str, int], run_id: int | None) -> None:
    """Replace the audience's members per split with what its run just left."""
    now = datetime.now(UTC)
    rows = [
        {"audience": audience, "split": split, "members": int(count), "run_id": run_id,
         "measured_at": now}
        for split, count in sizes.items()
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(delete(audience_sizes).where(audience_sizes.c.audience == audience))
        if rows:
            conn.execute(insert(audience_sizes), rows)


def load_sizes(engine: Engine) -> dict[str, Sizes]:
    """Every audience's members per split as last measured (a few rows per audience)."""
    with engine.connect() as conn:
        rows = conn.execute(select(audience_sizes)).all()
    out: dict[str, Sizes] = {}
    for r in rows:
        at = r.measured_at if r.measured_at.tzinfo else r.measured_at.replace(tzinfo=UTC)
        found = out.setdefault(r.audience, Sizes({}, r.run_id, at))
        found.members[r.split] = int(r.members)
    return out
