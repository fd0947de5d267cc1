"""``python -m bench.console --quick`` runs end to end and prints every page's figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_console_bench_quick_runs():
    done = subprocess.run(
        [sys.executable, "-m", "bench.console", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for page in ("overview", "run, search", "dead letters", "target: every page under 200 ms"):
        assert page in done.stdout
