"""Every ``python`` block in the docs runs as written, in its own interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.examples import Block, all_blocks

BLOCKS = all_blocks("python")


def test_docs_have_python_examples():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_python_example_runs(block: Block, tmp_path: Path):
    assert block.mode is None, f"{block.where}: python examples always run"
    result = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"{block.where}\n{result.stdout}\n{result.stderr}"
