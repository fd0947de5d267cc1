"""A destination's ``rate_limits`` reach every client sending to it: syncs and delivery
share one budget, counted in PostgreSQL when the state is there."""

from __future__ import annotations

from pathlib import Path

from headwater.braze.budget import BucketLimit
from headwater.config import load_project
from headwater.state.db import open_state
from headwater.syncs.engine import _client_for

from .test_engine import make_project

LIMITS = """
destinations:
  braze:
    url: {url}
    api_key: rate-limits-key
    rate_limits:
      users.track: {{limit: 1, window_seconds: 10}}
      users.export.ids: {{limit: 100, window_seconds: 60}}
"""


def project_with_limits(tmp_path: Path, url: str, state: str):
    make_project(tmp_path, url, "rate-limits-key")
    text = (tmp_path / "headwater.yml").read_text()
    start = text.index("destinations:")
    end = text.index("sources:")
    text = text[:start] + LIMITS.format(url=url).lstrip() + f"state: {state}\n" + text[end:]
    (tmp_path / "headwater.yml").write_text(text)
    return load_project(tmp_path)


def test_a_sync_sends_under_the_destination_rate_limits(tmp_path):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    project = project_with_limits(tmp_path, "http://127.0.0.1:7", state_url)
    state = open_state(state_url)
    try:
        client = _client_for(project, project.syncs["contacts"], state)
    finally:
        state.dispose()

    assert client.budget.limit("users.track") == BucketLimit(1, 10)
    assert client.budget.limit("users.export.ids") == BucketLimit(100, 60)
    assert client.budget.limit("users.identity") == BucketLimit(20000, 60)  # Braze's default
    assert client.budget.shared is False  # SQLite state: this process only
    assert client.concurrency.ceiling == 200  # max_concurrency is the ceiling


def test_on_postgresql_syncs_share_the_budget_with_other_processes(tmp_path, pg_url):
    project = project_with_limits(tmp_path, "http://127.0.0.1:8", pg_url)
    state = open_state(pg_url)
    try:
        one = _client_for(project, project.syncs["contacts"], state)
        two = _client_for(project, project.syncs["contacts"], state)
    finally:
        state.dispose()

    assert one.budget is two.budget
    assert one.budget.shared is True
