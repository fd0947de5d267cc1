"""Splits: fixed slots, allocated once, never rebalanced."""

from __future__ import annotations

import duckdb
from hypothesis import given
from hypothesis import strategies as st

from headwater.audiences.splits import allocate, group_of, slot_of, slot_sql
from headwater.config.audiences import SLOTS
from headwater.engines import open_engine


def slots_of(ranges, group) -> set[int]:
    return {s for first, last in ranges.get(group, []) for s in range(first, last + 1)}


@st.composite
def share_changes(draw):
    """A first allocation's shares, and new shares where some groups keep theirs."""
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=5, unique=True))
    cuts = sorted(draw(st.lists(st.integers(1, SLOTS - 1), min_size=len(names) - 1,
                                max_size=len(names) - 1, unique=True)))  # fmt: skip
    bounds = [0, *cuts, SLOTS]
    first = {n: bounds[i + 1] - bounds[i] for i, n in enumerate(names)}
    kept = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names) - 1))
    rest = SLOTS - sum(first[n] for n in kept)
    others = [n for n in names if n not in kept] + draw(
        st.lists(st.sampled_from("xyz"), unique=True, max_size=2)
    )
    cuts = sorted(draw(st.lists(st.integers(1, max(rest - 1, 1)), min_size=len(others) - 1,
                                max_size=len(others) - 1, unique=True)))  # fmt: skip
    bounds = [0, *cuts, rest]
    second = {n: first[n] for n in kept}
    second.update({n: bounds[i + 1] - bounds[i] for i, n in enumerate(others)})
    return first, {n: v for n, v in second.items() if v > 0}, kept


@given(share_changes())
def test_changing_shares_moves_nobody_between_the_groups_left_alone(change):
    first_shares, second_shares, kept = change
    if sum(second_shares.values()) != SLOTS:
        return
    before = allocate({}, first_shares)
    after = allocate(before, second_shares)
    every = set()
    for group, share in second_shares.items():
        mine = slots_of(after, group)
        assert len(mine) == share
        assert not mine & every
        every |= mine
        old = slots_of(before, group)
        if group in kept:
            assert mine == old  # untouched: exactly the same people
        elif share <= len(old):
            assert mine <= old  # shrank: kept part of its own, took nobody's
        else:
            assert old <= mine  # grew: lost nobody
    assert every == set(range(SLOTS))


def test_first_allocation_is_contiguous_in_file_order():
    ranges = allocate({}, {"a": 4500, "b": 4500, "holdout": 1000})
    assert ranges == {"a": [(0, 4499)], "b": [(4500, 8999)], "holdout": [(9000, 9999)]}
    assert group_of(ranges, 4500) == "b"


def test_the_slot_is_the_same_in_python_duckdb_and_postgresql(pg_url):
    ids = ["P0001", "42", "ünïcode", "x" * 300]
    want = [slot_of("vip-2026", i) for i in ids]
    conn = duckdb.connect()
    got = [
        conn.execute(
            f"SELECT {slot_sql('duckdb', chr(39) + 'vip-2026' + chr(39), '$1')}", [i]
        ).fetchone()[0]
        for i in ids
    ]
    assert got == want
    engine = open_engine(pg_url)
    try:
        for i, expected in zip(ids, want, strict=True):
            sql = f"SELECT {slot_sql('postgres', chr(39) + 'vip-2026' + chr(39), ':v')}"
            assert engine.fetch_all(sql, {"v": i})[0][0] == expected
    finally:
        engine.close()
    assert conn.execute(f"SELECT {slot_sql('duckdb', chr(39) + 's' + chr(39), '12')}").fetchone()[
        0
    ] == slot_of("s", 12)


def test_slots_spread_evenly():
    counts = [0] * 10
    for i in range(20_000):
        counts[slot_of("salt", f"P{i}") * 10 // SLOTS] += 1
    assert max(counts) < 2_000 * 1.1 and min(counts) > 2_000 * 0.9
