"""Shell examples marked ``<!-- test: sandbox -->`` run as written against a real
``headwater sandbox`` process on a real port: the blocks of one page in order, in one shell,
in a fresh directory. Every other ``bash`` block must say why it does not run."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.docs.examples import PAGES, ROOT, Block, blocks

SANDBOX_KEY = "dev-key"  # the key the docs tell users to start the sandbox with
DOCS_ADDRESS = "127.0.0.1:9090"  # the sandbox's default address, as the docs write it
BASH_MODES = {"sandbox", "no-run"}

BASH = [b for page in PAGES for b in blocks(page) if b.lang == "bash"]
PAGES_TO_RUN = sorted({b.page for b in BASH if b.mode == "sandbox"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    """``headwater sandbox`` as the docs start it, in the directory the examples run in."""
    port = _free_port()
    log = (tmp_path / "sandbox.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater", "sandbox", "--db", ".headwater/sandbox.db",
         "--port", str(port), "--key", SANDBOX_KEY],
        cwd=tmp_path, stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert process.poll() is None, (tmp_path / "sandbox.log").read_text()
            try:
                httpx.get(f"{url}/_sandbox/counters", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def script(page_blocks: list[Block], url: str) -> str:
    """One bash script: curl fails on an HTTP error, each block announces itself."""
    address = url.removeprefix("http://")
    lines = [
        "set -euo pipefail",
        'curl() { command curl --silent --show-error --fail-with-body "$@"; }',
    ]
    for block in page_blocks:
        lines.append(f"echo {shlex.quote('>>> ' + block.where)}")
        lines.append(block.text.replace(DOCS_ADDRESS, address))
    return "\n".join(lines) + "\n"


def test_every_bash_block_says_whether_it_runs():
    problems = [
        f"{b.where}: {b.mode or 'no marker'}"
        for b in BASH
        if b.mode not in BASH_MODES or (b.mode == "no-run" and "(" not in _marker_line(b))
    ]
    assert not problems, "mark bash blocks <!-- test: sandbox --> or <!-- test: no-run (why) -->"


def _marker_line(block: Block) -> str:
    return block.page.read_text(encoding="utf-8").splitlines()[block.line - 2]


def test_docs_have_runnable_shell_examples():
    assert len(PAGES_TO_RUN) >= 3


@pytest.mark.parametrize("page", PAGES_TO_RUN, ids=[p.name for p in PAGES_TO_RUN])
def test_shell_examples_run_against_the_sandbox(page: Path, sandbox: str, tmp_path: Path):
    runnable = [b for b in blocks(page) if b.lang == "bash" and b.mode == "sandbox"]
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KEY": SANDBOX_KEY,
        "BRAZE_API_KEY": SANDBOX_KEY,
        "BRAZE_URL": sandbox,
        "COLUMNS": "120",
    }
    result = subprocess.run(
        ["bash", "-c", script(runnable, sandbox)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"a block failed (the last '>>>' line names it)\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )


def test_a_failing_request_fails_the_page(sandbox: str, tmp_path: Path):
    """The check can fail: curl in an example fails on an HTTP error, like a wrong key."""
    block = Block(ROOT / "x.md", 1, "bash", "sandbox",
                  f"curl -s http://{DOCS_ADDRESS}/users/track -H 'Authorization: Bearer nope' -d '{{}}'\n")  # fmt: skip
    result = subprocess.run(
        ["bash", "-c", script([block], sandbox)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "401" in result.stderr + result.stdout
