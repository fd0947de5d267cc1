"""The membership SQL in both engines a model can live in: DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from headwater.audiences import membership
from headwater.audiences.membership import Plan
from headwater.audiences.splits import allocate, slot_of


def load(engine, people: dict[str, tuple[int, str | None]]) -> None:
    table = pa.table(
        {
            "person_id": list(people),
            "ltv": [v[0] for v in people.values()],
            "email": [v[1] for v in people.values()],
        }
    )
    engine.load_arrow("hw_model_people", table, replace=True)


def plans() -> list[Plan]:
    return [
        Plan(
            "vip",
            "(ltv >= 100)",
            "person_id",
            "vip",
            allocate({}, {"a": 5000, "holdout": 5000}),
            "person_id",
        ),
        Plan("by-mail", "(ltv >= 50)", "email", "mail", allocate({}, {"all": 10000}), "person_id"),
    ]


def changes(engine, plan) -> dict:
    out = {}
    for batch in membership.iter_changes(engine, "people", plan):
        for key, old, new, ident, old_ident in zip(
            *(c.to_pylist() for c in batch.columns), strict=True
        ):
            out[key] = (old, new, ident, old_ident)
    return out


def run(engine, people) -> list[dict]:
    load(engine, people)
    ready = membership.ensure_tables(engine, "people", "hw_model_people", "person_id", plans())
    membership.compute_delta(engine, "people", "hw_model_people", "person_id", ready)
    found = [changes(engine, p) for p in ready]
    now = datetime.now(UTC).isoformat()
    for plan, rows in zip(ready, found, strict=True):
        membership.commit(engine, "people", plan, list(rows), now)
        if not plan.settled:
            assert membership.settle(engine, "people", plan)
    return found


def test_entries_exits_moves_and_new_identifiers(engine):
    people = {f"P{i}": (i * 10, f"p{i}@x.com") for i in range(30)}
    vip, mail = run(engine, people)
    assert set(vip) == {f"P{i}" for i in range(10, 30)}
    for key, (old, new, ident, _old_ident) in vip.items():
        expected = "a" if slot_of("vip", key) < 5000 else "holdout"
        assert (old, new, ident) == (None, expected, key)
    assert set(mail) == {f"P{i}" for i in range(5, 30)}
    assert run(engine, people) == [{}, {}]  # nothing changed: nothing to do

    people["P29"] = (0, "p29@x.com")  # leaves both
    del people["P28"]  # leaves every source
    people["P27"] = (270, "new27@x.com")  # same audiences, a new address
    vip, mail = run(engine, people)
    assert vip["P29"][:2] == (vip["P29"][0], None) and vip["P28"][1] is None
    assert set(vip) == {"P28", "P29"}
    assert mail["P28"] == ("all", None, None, "p28@x.com")  # the exit knows where to go
    assert mail["P27"] == ("all", "all", "new27@x.com", "p27@x.com")
    assert run(engine, people) == [{}, {}]
    rows = engine.fetch_all(
        "SELECT person_id, split, left_at IS NULL FROM hw_audience_history "
        "WHERE audience = 'by-mail' AND person_id IN ('P27', 'P28') ORDER BY person_id, entered_at"
    )
    assert rows == [("P27", "all", False), ("P27", "all", True), ("P28", "all", False)]


def test_a_slot_is_hashed_once_and_kept(engine):
    people = {f"P{i}": (500, None) for i in range(50)}
    run(engine, people)
    kept = dict(engine.fetch_all('SELECT hw_key, "vip__slot" FROM hw_audiences_people'))
    assert kept == {k: slot_of("vip", k) for k in people}


def test_a_model_holds_more_audiences_than_one_members_column(engine):
    """Each audience has a bit in the state's members mask, never reused; past 62 of them
    the bits go on in a second column, and entries and exits work there as in the first."""
    many = [
        Plan(
            f"ltv{n}",
            f"(ltv >= {n})",
            "person_id",
            f"s{n}",
            allocate({}, {"all": 10000}),
            "person_id",
        )  # fmt: skip
        for n in range(70)
    ]
    people = {f"P{i}": (i, None) for i in range(100)}

    def run_many() -> dict[str, set]:
        load(engine, people)
        ready = membership.ensure_tables(engine, "people", "hw_model_people", "person_id", many)
        membership.compute_delta(engine, "people", "hw_model_people", "person_id", ready)
        found = {p.name: changes(engine, p) for p in ready}
        now = datetime.now(UTC).isoformat()
        for plan in ready:
            membership.commit(engine, "people", plan, list(found[plan.name]), now)
        return {name: set(rows) for name, rows in found.items() if rows}

    first = run_many()
    assert first["ltv69"] == {f"P{i}" for i in range(69, 100)}  # the second column's
    assert first["ltv0"] == set(people) and len(first) == 70
    assert run_many() == {}  # both columns remembered what Braze accepted
    people["P99"] = (3, None)  # leaves ltv4..ltv69, stays in ltv0..ltv3
    assert run_many() == {f"ltv{n}": {"P99"} for n in range(4, 70)}
    assert membership.split_sizes(engine, "people", "ltv65") == {"all": 34}
