"""A project with triggers against a real sandbox, its state on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from headwater.config.loading import parse_project
from headwater.sandbox.testing import RunningSandbox, run_sandbox

CAMPAIGN = "camp-welcome"
CANVAS = "canvas-onboard"

PROJECT = """
state: {state}
destinations:
  braze: {{url: "{url}", api_key: "{key}"}}
triggers:
  welcome_vip:
    when: {{audience: vip, split: a}}
    campaign_id: {campaign}
    properties:
      company: "{{{{ customer.company_name }}}}"
      points: "{{{{ customer.points }}}}"
  onboard:
    when: {{audience: vip}}
    canvas_id: {canvas}
    properties: {{tier: "gold"}}
  mark:
    when: {{audience: churn}}
    profile_only: true
    properties: {{churn_risk: "{{{{ customer.risk }}}}"}}
"""


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[RunningSandbox]:
    with run_sandbox(
        campaigns=[{"id": CAMPAIGN, "name": "Welcome"}],
        canvases=[{"id": CANVAS, "name": "Onboarding"}],
    ) as running:
        yield running


@pytest.fixture
def sandbox(sandbox_server) -> RunningSandbox:
    sandbox_server.reset()
    return sandbox_server


def make_project(sandbox: RunningSandbox, state_url: str, root: Path, text: str = PROJECT):
    body = text.format(state=state_url, url=sandbox.url, key=sandbox.key, campaign=CAMPAIGN,
                       canvas=CANVAS)  # fmt: skip
    return parse_project(body, root=root)


def recorded_sends(sandbox: RunningSandbox) -> list[dict]:
    return httpx.get(f"{sandbox.url}/_sandbox/sends", timeout=30).json()["sends"]


def entries(n: int, *, start: int = 0, entered_at: str = "2026-12-01") -> list[dict]:
    return [
        {
            "person_id": f"p{i}",
            "identifier": {"external_id": f"u{i}"},
            "record": {"company_name": f"Co {i}", "points": i},
            "entered_at": entered_at,
        }
        for i in range(start, start + n)
    ]
