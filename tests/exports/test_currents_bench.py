"""``bench/currents.py`` runs: its ``--quick`` size end to end against a real serve process.
Only correctness is asserted (every accepted event landed once), never a speed: the figures
belong to docs/benchmarks.md, measured on a quiet machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_quick_benchmark_lands_every_accepted_event():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.currents", "--quick"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "events/s accepted" in out and "accept p99" in out
    landed = [line for line in out.splitlines() if "every accepted event landed once" in line]
    assert len(landed) == 2 and all("[met]" in line for line in landed), out
