"""bench/segment_export.py runs end to end at its --quick size (the figures themselves are
measured by hand on an idle machine: docs/benchmarks.md)."""

from __future__ import annotations

from bench.segment_export import main


def test_the_benchmark_runs_quick(capsys):
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "first run: 5,000 members" in out and "second run: 5,000 members" in out
    assert "entered 0, stayed 5,000" in out
