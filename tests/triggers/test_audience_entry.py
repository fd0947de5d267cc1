"""Audience runs fire their entry triggers: once per entry, and again on a later re-entry."""

from __future__ import annotations

from collections import Counter

import httpx

from headwater.audiences import run_audience
from headwater.config import load_project
from headwater.sandbox.testing import run_sandbox
from tests.audiences.people import person, write_people, write_project

AUDIENCE = """
vip:
  model: people
  where: "ltv >= 50"
  destination: braze
  splits: {a: 50, b: 50}
"""
TRIGGERS = """
triggers:
  welcome:
    when: {audience: vip}
    campaign_id: welcome
    properties: {ltv: "{{ customer.ltv }}"}
"""


def test_entries_fire_once_and_a_later_reentry_fires_again(tmp_path):
    with run_sandbox() as sandbox:
        httpx.post(f"{sandbox.url}/_sandbox/campaigns", json={"id": "welcome", "name": "W"})
        root = write_project(tmp_path, sandbox.url, sandbox.key, AUDIENCE)
        (root / "headwater.yml").write_text((root / "headwater.yml").read_text() + TRIGGERS)
        rows = [person(i) for i in range(10)]  # P0005..P0009 are members

        def recipients() -> Counter:
            sends = httpx.get(f"{sandbox.url}/_sandbox/sends").json()["sends"]
            return Counter(r["external_user_id"] for s in sends for r in s["recipients"])

        write_people(root, rows)
        assert run_audience(load_project(root), "vip").error is None
        assert recipients() == Counter({f"P000{i}": 1 for i in range(5, 10)})
        assert run_audience(load_project(root), "vip").error is None  # nothing new
        assert sum(recipients().values()) == 5
        write_people(root, [*rows[:9], person(9, ltv="0")])  # P0009 leaves
        run_audience(load_project(root), "vip")
        write_people(root, rows)  # and comes back
        run_audience(load_project(root), "vip")
        assert recipients()["P0009"] == 2
        assert sum(recipients().values()) == 6
