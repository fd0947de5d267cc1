"""Run records on SQLite and PostgreSQL: counts, statuses, row errors, interrupted runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, update

from headwater.errors import RowError
from headwater.state import runs as runs_module
from headwater.state.db import open_state
from headwater.state.runs import (
    RowErrorRecord,
    add_row_errors,
    finish_run,
    get_run,
    list_runs,
    mark_interrupted,
    record_progress,
    row_errors,
    runs,
    start_run,
)


@pytest.fixture
def state(state_url) -> Iterator[Engine]:
    engine = open_state(state_url)
    yield engine
    engine.dispose()


def test_a_successful_run_records_counts_and_duration(state):
    run_id = start_run(state, "contacts")
    running = get_run(state, run_id)
    assert running.status == "running" and running.finished_at is None
    record_progress(state, run_id, added=5, sent=5, requests=1)
    assert get_run(state, run_id).counts["added"] == 5
    status = finish_run(
        state, run_id, added=10, changed=3, unchanged=87, sent=13, requests=1, data_points=20
    )
    run = get_run(state, run_id)
    assert status == run.status == "succeeded"
    assert run.counts == {
        "added": 10,
        "changed": 3,
        "removed": 0,
        "unchanged": 87,
        "rejected": 0,
        "failed": 0,
        "sent": 13,
        "requests": 1,
        "data_points": 20,
        "data_points_saved": 0,
    }
    assert run.finished_at >= run.started_at
    assert run.duration_seconds >= 0
    assert run.to_dict()["started_at"].endswith("+00:00")


def test_status_follows_from_errors_and_rejections(state):
    partial = start_run(state, "contacts")
    record_progress(state, partial, rejected=1)
    assert finish_run(state, partial, sent=9) == "partial"
    failed = start_run(state, "contacts")
    assert finish_run(state, failed, error="Braze said 401: Invalid API key") == "failed"
    assert get_run(state, failed).error == "Braze said 401: Invalid API key"
    with pytest.raises(ValueError, match="unknown run counts"):
        record_progress(state, failed, bogus=1)


def test_row_errors_are_all_stored_and_read_a_page_at_a_time(state):
    run_id = start_run(state, "contacts")
    stored = add_row_errors(
        state,
        run_id,
        [RowErrorRecord(f"u{i}", "email", "not an email") for i in range(250)]
        + [RowError("bad phone", row="u999", field="phone"), ("u1000", None, "too long")],
    )
    assert stored == 252
    assert get_run(state, run_id).row_error_count == 252
    first = row_errors(state, run_id, limit=100)
    assert [e.row_key for e in first[:2]] == ["u0", "u1"]
    last = row_errors(state, run_id, limit=100, offset=200)
    assert len(last) == 52
    assert last[-2] == RowErrorRecord("u999", "phone", "bad phone")
    assert last[-1] == RowErrorRecord("u1000", None, "too long")


def test_list_runs_is_newest_first_and_filters_by_sync(state):
    a = start_run(state, "contacts")
    b = start_run(state, "orders", kind="export")
    c = start_run(state, "contacts")
    assert [r.id for r in list_runs(state)] == [c, b, a]
    assert [r.id for r in list_runs(state, sync="contacts")] == [c, a]
    assert [r.id for r in list_runs(state, limit=1)] == [c]
    assert get_run(state, b).kind == "export"
    assert get_run(state, 999_999) is None


def test_a_run_whose_process_was_killed_shows_as_interrupted(state, state_url):
    code = (
        "import os, signal\n"
        "from headwater.state.db import open_state\n"
        "from headwater.state.runs import start_run\n"
        f"print(start_run(open_state({state_url!r}), 'contacts'), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    dead_run = int(child.stdout.strip())
    live_run = start_run(state, "contacts")  # this process is alive

    assert get_run(state, dead_run).status == "interrupted"
    assert get_run(state, live_run).status == "running"
    assert mark_interrupted(state) == [dead_run]
    assert mark_interrupted(state) == []
    assert get_run(state, dead_run).finished_at is not None
    assert get_run(state, live_run).status == "running"


def test_a_run_on_another_host_is_interrupted_only_when_its_heartbeat_is_stale(state):
    fresh = start_run(state, "contacts")
    stale = start_run(state, "contacts")
    old = datetime.now(UTC) - timedelta(seconds=runs_module.STALE_HEARTBEAT_SECONDS + 60)
    with state.begin() as conn:
        conn.execute(update(runs).where(runs.c.id.in_([fresh, stale])).values(host="elsewhere"))
        conn.execute(update(runs).where(runs.c.id == stale).values(heartbeat_at=old))
    assert get_run(state, fresh).status == "running"
    assert mark_interrupted(state) == [stale]
    record_progress(state, fresh, sent=1)
    assert get_run(state, fresh).status == "running"


def test_a_finished_run_is_never_marked_interrupted(state):
    run_id = start_run(state, "contacts")
    finish_run(state, run_id)
    with state.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == run_id).values(pid=2**22 + 7))
    assert mark_interrupted(state) == []
    assert get_run(state, run_id).status == "succeeded"
