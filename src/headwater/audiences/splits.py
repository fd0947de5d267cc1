"""Splits: fixed slots, allocated once and never rebalanced.

A person's slot in an audience is ``int(md5(salt + ":" + person_id)[:8], 16) % 10000``:
md5 because DuckDB and PostgreSQL both have it and it will not change between versions
(DuckDB's own ``hash`` may), and it is cheap enough because it is computed once per
person and audience, when they first enter, then kept with their membership.

Which split owns which slots is persisted (``headwater.state.audiences``). When shares
change, ``allocate`` only trims the splits that shrank (from their highest slots) and
hands free slots (lowest first) to the splits that grew; a split whose share did not
change keeps exactly its slots. So changing one split's share moves people only between
that split and the ones that gave or took its slots, and growing the audience never moves
anyone already in it: their slot, and the split that owns it, stay put.
"""

from __future__ import annotations

import hashlib

from headwater.config.audiences import SLOTS
from headwater.state.audiences import Ranges

SLOT_PLACEHOLDER = "HW_AUDIENCE_SLOT"


def slot_of(salt: str, person_id: object) -> int:
    """The slot the engines compute in SQL (``slot_sql``), in Python."""
    digest = hashlib.md5(f"{salt}:{person_id}".encode()).hexdigest()
    return int(digest[:8], 16) % SLOTS


def slot_sql(dialect: str, salt_literal: str, key_sql: str) -> str:
    """``slot_of`` as SQL for ``dialect``; ``salt_literal`` is already a quoted literal."""
    text = f"({salt_literal} || ':' || CAST({key_sql} AS VARCHAR))"
    if dialect == "postgres":
        text = text.replace("AS VARCHAR", "AS TEXT")
        return f"(('x' || substr(md5{text}, 1, 8))::bit(32)::bigint % {SLOTS})"
    return f"(CAST(('0x' || substr(md5{text}, 1, 8)) AS BIGINT) % {SLOTS})"


def _size(spans: list[tuple[int, int]]) -> int:
    return sum(last - first + 1 for first, last in spans)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and merged[-1][1] + 1 == first:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def _trim(spans: list[tuple[int, int]], keep: int) -> list[tuple[int, int]]:
    """The lowest ``keep`` slots of ``spans`` (a shrinking split gives up its highest)."""
    kept: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if keep <= 0:
            break
        take = min(keep, last - first + 1)
        kept.append((first, first + take - 1))
        keep -= take
    return kept


def allocate(previous: Ranges, shares: dict[str, int]) -> Ranges:
    """New ranges for ``shares`` (group -> slots, summing to SLOTS), moving as few slots
    as possible from ``previous``. Groups keep their order in ``shares`` for a first
    allocation: contiguous ranges from slot 0 up."""
    if sum(shares.values()) != SLOTS:
        raise ValueError(f"shares add up to {sum(shares.values())} slots, not {SLOTS}")
    ranges: Ranges = {}
    for group, want in shares.items():
        held = previous.get(group, [])
        ranges[group] = _trim(held, want) if _size(held) >= want else list(held)
    taken = sorted(span for spans in ranges.values() for span in spans)
    free: list[tuple[int, int]] = []
    cursor = 0
    for first, last in taken:
        if first > cursor:
            free.append((cursor, first - 1))
        cursor = max(cursor, last + 1)
    if cursor < SLOTS:
        free.append((cursor, SLOTS - 1))
    for group, want in shares.items():
        missing = want - _size(ranges[group])
        while missing > 0:
            first, last = free[0]
            take = min(missing, last - first + 1)
            ranges[group].append((first, first + take - 1))
            missing -= take
            if first + take > last:
                free.pop(0)
            else:
                free[0] = (first + take, last)
        ranges[group] = _merge(ranges[group])
    return ranges


def group_of(ranges: Ranges, slot: int) -> str | None:
    for group, spans in ranges.items():
        if any(first <= slot <= last for first, last in spans):
            return group
    return None


def group_sql(ranges: Ranges, slot_sql_text: str) -> str:
    """``CASE`` mapping a slot to its group's name; NULL for a NULL slot."""
    bounds = sorted((last, group) for group, spans in ranges.items() for _first, last in spans)
    whens = " ".join(
        f"WHEN {slot_sql_text} <= {last} THEN '{group.replace(chr(39), chr(39) * 2)}'"
        for last, group in bounds
    )
    return f"(CASE {whens} END)"
