"""bench/identity.py at its --quick size: it runs, and the resolution is exact."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from bench import identity

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_is_exact(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "src"), str(ROOT)]))
    monkeypatch.setattr(sys, "argv", ["bench.identity"])
    result = identity.main(["--quick", "--dir", str(tmp_path)])
    for run in result["full"], result["incremental"]:
        assert run["precision"] == 1.0 and run["recall"] == 1.0
        assert run["refused"] > 0 and run["rejected"] > 0
        assert run["split_count"] == run["mixed_count"] == 0
        assert run["steps"][-1]["step"] == "writing the tables"
        assert all(step["peak_rss"] > 0 for step in run["steps"])
    assert result["incremental"]["new_persons"] == 0
    assert (result["full"]["mode"], result["incremental"]["mode"]) == ("full", "incremental")
    assert result["incremental"]["touched"] < result["incremental"]["records"] // 5
    assert "precision 1.0000, recall 1.0000" in capsys.readouterr().out
