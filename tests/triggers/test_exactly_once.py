"""Exactly once across threads, processes and a SIGKILL between send and record, with
the state on PostgreSQL (several serve processes share it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.state import triggers as ledger
from headwater.state.db import open_state
from headwater.triggers import fire_on_audience_entry
from tests.triggers.conftest import CAMPAIGN, PROJECT, entries, make_project, recorded_sends

ROOT = Path(__file__).resolve().parents[2]


def campaign_recipients(sandbox) -> Counter:
    return Counter(
        r["external_user_id"]
        for s in recorded_sends(sandbox)
        if s.get("campaign_id") == CAMPAIGN
        for r in s["recipients"]
    )


def test_two_racing_threads_send_every_entry_once(sandbox, pg_url, tmp_path):
    project = make_project(sandbox, pg_url, tmp_path)
    open_state(pg_url).dispose()  # the store exists before the processes race (as in serve)
    people = entries(300)
    start = threading.Barrier(3)
    reports = []

    def run() -> None:
        start.wait()
        reports.append(fire_on_audience_entry(project, "vip", "a", people))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    sent = [next(o for o in r.outcomes if o.trigger == "welcome_vip").sent for r in reports]
    assert sum(sent) == 300
    recipients = campaign_recipients(sandbox)
    assert len(recipients) == 300 and set(recipients.values()) == {1}


SCRIPT = """
import os, signal, sys
from pathlib import Path
from headwater.config.loading import parse_project
from headwater.state import triggers as ledger
from headwater.triggers import fire_on_audience_entry
import json

real = ledger.record
def record(engine, trigger, token, keys, status, **kw):
    if status == ledger.SENT:  # Braze answered 2xx; die before writing it down
        os.kill(os.getpid(), signal.SIGKILL)
    return real(engine, trigger, token, keys, status, **kw)
ledger.record = record

project = parse_project(Path(sys.argv[1]).read_text(), root=Path(sys.argv[1]).parent)
fire_on_audience_entry(project, "vip", "a", json.loads(sys.argv[2]))
"""


def test_sigkill_between_send_and_record_never_sends_twice_and_counts_in_doubt(
    sandbox, pg_url, tmp_path
):
    import json

    project = make_project(sandbox, pg_url, tmp_path)
    people = entries(3)
    text = PROJECT.format(state=pg_url, url=sandbox.url, key=sandbox.key, campaign=CAMPAIGN,
                          canvas="canvas-onboard")  # fmt: skip
    (tmp_path / "headwater.yml").write_text(text)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "headwater.yml"), json.dumps(people)],
        env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    assert sum(campaign_recipients(sandbox).values()) == 3  # the request reached Braze

    # A restart, and a second process, present the same entries: nothing is resent.
    for _ in range(2):
        report = fire_on_audience_entry(project, "vip", "a", people)
        outcome = next(o for o in report.outcomes if o.trigger == "welcome_vip")
        assert (outcome.sent, outcome.already) == (0, 3)
    assert sum(campaign_recipients(sandbox).values()) == 3

    state = open_state(project.state_url)
    assert ledger.counts(state)["welcome_vip"][ledger.CLAIMED] == 3  # within the lease
    assert ledger.sweep_stale(state, now=time.time() + ledger.DEFAULT_LEASE_SECONDS + 1) == 3
    assert ledger.counts(state)["welcome_vip"][ledger.IN_DOUBT] == 3
    result = CliRunner().invoke(app, ["triggers", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 sends in doubt" in result.output
    listed = CliRunner().invoke(app, ["triggers", "--project", str(tmp_path), "--json"])
    rows = {r["trigger"]: r for r in json.loads(listed.output)}
    assert rows["welcome_vip"]["in_doubt"] == 3 and rows["welcome_vip"]["sent"] == 0
    assert rows["onboard"]["sent"] == 3  # the killed process never reached it; the restart did
