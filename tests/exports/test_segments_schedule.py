"""``headwater export segments --schedule``: serve's scheduler in the foreground for the
export job, in a real process against the sandbox, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from gateway_harness import wait_until
from test_segments_export import project_text, users
from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.sandbox.testing import run_sandbox
from headwater.state import runs
from headwater.state.db import open_state


def test_the_export_runs_at_each_slot_until_ctrl_c(tmp_path):
    with run_sandbox() as sandbox:
        sandbox.seed(attributes=users(20))
        sandbox.define_segment("Everyone")
        (tmp_path / "headwater.yml").write_text(project_text(sandbox.url))
        env = {**os.environ, "HW_TEST_KEY": sandbox.key}
        process = subprocess.Popen(
            [sys.executable, "-m", "headwater", "export", "segments", "--schedule", "2s",
             "--project", str(tmp_path)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            state = open_state(f"sqlite:///{tmp_path / '.headwater' / 'state.db'}")
            finished = lambda: [r for r in runs.list_runs(state) if r.status == "succeeded"]  # noqa: E731
            wait_until(lambda: len(finished()) >= 2, timeout=120, interval=0.2)
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, out
    assert b"every 2s" in out and b"next run" in out
    assert {r.sync for r in finished()} == {"segments"}


def test_a_bad_schedule_is_refused_before_anything_runs(tmp_path):
    (tmp_path / "headwater.yml").write_text(project_text("http://127.0.0.1:9"))
    result = CliRunner().invoke(
        app, ["export", "segments", "--schedule", "61 * * * *", "--project", str(tmp_path)],
        env={"HW_TEST_KEY": "k"},
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--schedule" in result.output
