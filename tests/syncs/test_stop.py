"""A sync asked to stop (a ``serve`` shutting down) stops between objects: what Braze
accepted is committed, the run is recorded ``interrupted`` rather than left ``running``,
and the next run sends the rest."""

from __future__ import annotations

import threading

from tests.syncs.test_engine import assert_sandbox_matches, contact, make_project, write_contacts

from headwater.config import load_project
from headwater.sandbox.testing import run_sandbox
from headwater.state import runs
from headwater.state.db import open_state
from headwater.syncs.engine import run_sync

ROWS = 2000


def test_a_stopped_sync_records_itself_interrupted_and_the_next_run_sends_the_rest(tmp_path):
    with run_sandbox() as sandbox:
        root = make_project(tmp_path, sandbox.url, sandbox.key)
        rows = [contact(i) for i in range(ROWS)]
        write_contacts(root / "data/contacts.csv", rows)
        stop = threading.Event()

        def progress(done: int, _total: int) -> None:
            if done:  # Braze answered a first request: the server stops now
                stop.set()

        first = run_sync(load_project(root), "contacts", progress=progress, stop=stop)
        assert first.status == "interrupted"
        assert 0 < first.sent < ROWS
        assert "next run sends the rest" in first.error
        state = open_state(load_project(root).state_url)
        try:
            assert runs.get_run(state, first.run_id).status == "interrupted"
        finally:
            state.dispose()

        second = run_sync(load_project(root), "contacts")
        assert second.status == "succeeded"
        assert first.sent + second.sent >= ROWS
        assert_sandbox_matches(sandbox, rows)
