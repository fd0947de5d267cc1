"""Kill `headwater sync` with SIGKILL mid-run; the next run leaves every user in the
model's latest state, and the killed run is shown as interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from gateway_harness import START_SECONDS
from tests.syncs.test_engine import assert_sandbox_matches, contact, make_project, write_contacts

from headwater.sandbox.testing import run_sandbox

ROWS = 3000


def headwater(*args: str, root) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "headwater", *args, "--project", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_sigkill_mid_sync_then_rerun_delivers_everything_and_marks_the_run_interrupted(tmp_path):
    with run_sandbox() as sandbox:
        root = make_project(tmp_path, sandbox.url, sandbox.key)
        (root / "headwater.yml").write_text(
            (root / "headwater.yml").read_text().replace("max_concurrency: 4", "max_concurrency: 2")
        )
        rows = [contact(i) for i in range(ROWS)]
        write_contacts(root / "data/contacts.csv", rows)
        sandbox.set_faults(latency_ms=60)
        victim = headwater("sync", "contacts", "--json", root=root)
        deadline = time.monotonic() + START_SECONDS  # the process starts, then sends
        while len(sandbox.users(limit=ROWS)) < ROWS // 4:
            assert victim.poll() is None, victim.communicate()
            assert time.monotonic() < deadline, "the sync made no progress"
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        delivered_before_kill = len(sandbox.users(limit=ROWS))
        assert delivered_before_kill < ROWS, "the kill came too late to test anything"
        sandbox.set_faults(latency_ms=0)

        rows[1] = contact(1, points="424242")  # the model moves on while nobody is looking
        write_contacts(root / "data/contacts.csv", rows)
        rerun = headwater("sync", "contacts", "--json", root=root)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        report = json.loads(out)
        assert report["status"] == "succeeded"
        assert_sandbox_matches(sandbox, rows)

        listing = headwater("runs", "--json", root=root)
        out, _ = listing.communicate(timeout=60)
        statuses = {r["id"]: r["status"] for r in json.loads(out)}
        assert statuses == {1: "interrupted", 2: "succeeded"}
        print(
            f"killed after {delivered_before_kill} of {ROWS} users; rerun sent {report['counts']['sent']}"
        )
