"""Connected components in SQL match a plain union-find, on chains and random graphs."""

from __future__ import annotations

import random

import pytest

from headwater.engines import DuckDBEngine
from headwater.errors import FatalError
from headwater.identity.components import connected_components


def union_find(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    by_value: dict[int, int] = {}
    for rid, vid in edges:
        find(rid)
        if vid in by_value:
            a, b = find(rid), find(by_value[vid])
            parent[max(a, b)] = min(a, b)
        else:
            by_value[vid] = rid
    return {x: min(y for y in parent if find(y) == find(x)) for x in parent}


def labels(edges: list[tuple[int, int]], **kwargs) -> dict[int, int]:
    with DuckDBEngine() as engine:
        engine.execute("CREATE TABLE e (_rid BIGINT, vid BIGINT)")
        if edges:
            engine.conn.executemany("INSERT INTO e VALUES (?, ?)", edges)
        connected_components(engine, "e", "out", **kwargs)
        return dict(engine.fetch_all("SELECT _rid, lbl FROM out"))


def test_a_long_chain_is_one_component_labelled_by_its_smallest_record():
    # record i shares value i with record i + 1, written backwards so labels travel far
    edges = [(rid, v) for v in range(300) for rid in (300 - v, 299 - v)]
    assert set(labels(edges).values()) == {0}


@pytest.mark.parametrize("seed", range(5))
def test_random_graphs_match_union_find(seed):
    rng = random.Random(seed)
    edges = list({(rng.randrange(400), rng.randrange(300)) for _ in range(500)})
    assert labels(edges) == union_find(edges)


def test_the_iteration_guard_stops_a_run_that_would_not_settle_in_time():
    edges = [(rid, v) for v in range(300) for rid in (300 - v, 299 - v)]
    with pytest.raises(FatalError, match="max_iterations"):
        labels(edges, max_iterations=2)
