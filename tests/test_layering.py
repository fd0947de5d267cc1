"""The package's layers (docs/development.md, contracts in pyproject.toml) hold: an import
from a lower layer into a higher one, or between two jobs, fails the suite."""

from __future__ import annotations

import pathlib

from importlinter.cli import lint_imports

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_imports_keep_to_the_layers(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True)
    report = capsys.readouterr().out
    assert code == 0, report
