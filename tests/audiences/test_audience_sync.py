"""Audiences end to end: a CSV model -> DuckDB -> membership diff -> the sandbox."""

from __future__ import annotations

from tests.audiences.people import person, write_people, write_project

from headwater.audiences import run_audience
from headwater.config import load_project

VIP = """
vip:
  model: people
  where: "ltv >= 1000"
  destination: braze
  splits: {a: 45, b: 45}
  holdout: 10
"""


def flags(sandbox) -> dict[str, dict]:
    return {
        u["external_id"]: {
            k: v for k, v in u.get("custom_attributes", {}).items() if k.startswith("AIQ_")
        }
        for u in sandbox.users()
        if u.get("external_id")
    }


def test_entries_land_as_booleans_and_only_changes_are_sent(tmp_path, sandbox):
    rows = [person(i) for i in range(300)]
    root = write_project(tmp_path, sandbox.url, sandbox.key, VIP)
    write_people(root, rows)
    first = run_audience(load_project(root), "vip")
    assert first.error is None, first.error
    members = {r["person_id"] for r in rows if int(r["ltv"]) >= 1000}
    assert first.added == len(members)
    users = flags(sandbox)
    assert set(users) <= members
    held = members - set(users)
    assert first.sizes.get("holdout", 0) == len(held)
    assert all(list(v.values()) == [True] for v in users.values())
    assert set().union(*(v.keys() for v in users.values())) == {"AIQ_vip_a", "AIQ_vip_b"}
    again = run_audience(load_project(root), "vip")
    assert (again.added, again.removed, again.sent, again.requests) == (0, 0, 0, 0)
    print(first, again)
