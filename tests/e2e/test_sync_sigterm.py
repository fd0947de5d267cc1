"""SIGTERM during `headwater sync`: the run writes itself down as interrupted, with what it
had sent, instead of leaving a record open for readers to guess about; the next run sends
the rest."""

from __future__ import annotations

import json
import signal
import time

from gateway_harness import START_SECONDS
from sqlalchemy import select
from tests.e2e.test_sync_kill import headwater
from tests.syncs.test_engine import assert_sandbox_matches, contact, make_project, write_contacts

from headwater.config import load_project
from headwater.sandbox.testing import run_sandbox
from headwater.state.db import open_state
from headwater.state.runs import runs

ROWS = 3000


def test_sigterm_mid_sync_records_the_run_as_interrupted(tmp_path):
    with run_sandbox() as sandbox:
        root = make_project(tmp_path, sandbox.url, sandbox.key)
        rows = [contact(i) for i in range(ROWS)]
        write_contacts(root / "data/contacts.csv", rows)
        sandbox.set_faults(latency_ms=60)
        victim = headwater("sync", "contacts", "--json", root=root)
        deadline = time.monotonic() + START_SECONDS  # the process starts, then sends
        while len(sandbox.users(limit=ROWS)) < ROWS // 4:
            assert victim.poll() is None, victim.communicate()
            assert time.monotonic() < deadline, "the sync made no progress"
            time.sleep(0.05)
        victim.send_signal(signal.SIGTERM)
        _out, err = victim.communicate(timeout=60)
        assert victim.returncode != 0
        assert "Traceback" not in err

        state = open_state(load_project(root).state_url)
        with state.connect() as conn:
            record = conn.execute(select(runs)).mappings().one()
        state.dispose()
        assert record["status"] == "interrupted"  # written, not inferred from a dead pid
        assert record["finished_at"] is not None
        assert 0 < record["sent"] < ROWS

        sandbox.set_faults(latency_ms=0)
        rerun = headwater("sync", "contacts", "--json", root=root)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        assert json.loads(out)["status"] == "succeeded"
        assert_sandbox_matches(sandbox, rows)
