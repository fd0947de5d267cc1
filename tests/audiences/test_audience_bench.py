"""``python -m bench.audiences --quick`` runs end to end (the full size is for docs)."""

from __future__ import annotations

from bench.audiences import main


def test_the_quick_benchmark_runs(capsys):
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "persons=20,000 audiences=20" in out
    assert "changes ->" in out and "before delivery" in out
