"""Every test that starts ``serve`` or ``sandbox`` waits for it the same way: one helper,
one generous bound that only limits a failure, so a loaded CI machine is never a failure."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from gateway_harness import START_SECONDS, wait_for_start

from headwater.testing import free_port

TESTS = Path(__file__).resolve().parents[1]


def test_only_the_shared_helper_waits_for_a_process_to_start():
    own_waits = [
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path.name not in {"gateway_harness.py", Path(__file__).name}
        and "did not start" in path.read_text()
    ]
    assert own_waits == [], "use gateway_harness.wait_for_start"
    assert START_SECONDS >= 120


def test_a_process_that_exits_fails_at_once_with_its_output():
    process = subprocess.Popen(
        [sys.executable, "-c", "print('no project here'); raise SystemExit(2)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    started = time.monotonic()
    with pytest.raises(AssertionError, match="exited \\(2\\) before answering: no project here"):
        wait_for_start(process, f"http://127.0.0.1:{free_port()}/healthz")
    assert time.monotonic() - started < START_SECONDS
