"""Shell examples run as written against real processes on real ports, the blocks of one
page in order, in one shell:

- ``<!-- test: sandbox -->``: in a fresh directory, against ``headwater sandbox``;
- ``<!-- test: gateway -->``: inside the example shop (``headwater init shop``), against
  ``headwater serve`` delivering to a sandbox.

Every other ``bash`` block must say why it does not run."""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_harness import wait_for_start

from tests.docs.examples import PAGES, ROOT, Block, blocks

SANDBOX_KEY = "dev-key"  # the key the docs tell users to start the sandbox with
DOCS_ADDRESS = "127.0.0.1:9090"  # the sandbox's default address, as the docs write it
GATEWAY_ADDRESS = "127.0.0.1:8080"  # serve's default address, as the docs write it
RUNNABLE = ("sandbox", "gateway")
BASH_MODES = {*RUNNABLE, "no-run"}

BASH = [b for page in PAGES for b in blocks(page) if b.lang == "bash"]
RUNS = sorted({(b.page, b.mode) for b in BASH if b.mode in RUNNABLE})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _process(args: list[str], cwd: Path, ready: str, env: dict | None = None) -> Iterator[str]:
    """Start ``headwater ARGS --port P`` and wait (bounded) until ``ready`` answers."""
    port = _free_port()
    log_file = cwd / f"{args[0]}.log"
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "headwater", *args, "--port", str(port)],
            cwd=cwd, stdout=log, stderr=log, env=env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_start(process, url + ready, name=args[0], log=log_file)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _sandbox(cwd: Path):
    """``headwater sandbox`` as the docs start it, in the directory the examples run in."""
    args = ["sandbox", "--db", ".headwater/sandbox.db", "--key", SANDBOX_KEY]
    return _process(args, cwd, "/_sandbox/counters")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    with _sandbox(tmp_path) as url:
        yield url


def _env(braze_url: str) -> dict[str, str]:
    return os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KEY": SANDBOX_KEY,
        "BRAZE_API_KEY": SANDBOX_KEY,
        "BRAZE_URL": braze_url,
        "HEADWATER_METRICS_TOKEN": "docs-metrics-token",  # serve reads it; pages scrape with it
        "COLUMNS": "120",
    }


def script(page_blocks: list[Block], url: str, gateway_url: str | None = None) -> str:
    """One bash script: curl fails on an HTTP error, each block announces itself."""
    address = url.removeprefix("http://")
    gateway = (gateway_url or "").removeprefix("http://")
    lines = [
        "set -euo pipefail",
        'curl() { command curl --silent --show-error --fail-with-body "$@"; }',
    ]
    for block in page_blocks:
        lines.append(f"echo {shlex.quote('>>> ' + block.where)}")
        text = block.text.replace(DOCS_ADDRESS, address)
        lines.append(text.replace(GATEWAY_ADDRESS, gateway) if gateway else text)
    return "\n".join(lines) + "\n"


def test_every_bash_block_says_whether_it_runs():
    problems = [
        f"{b.where}: {b.mode or 'no marker'}"
        for b in BASH
        if b.mode not in BASH_MODES or (b.mode == "no-run" and not b.why)
    ]
    assert not problems, (
        "mark bash blocks sandbox, gateway or no-run (why): see docs/development.md"
    )


def test_docs_have_runnable_shell_examples():
    assert {mode for _page, mode in RUNS} == set(RUNNABLE) and len(RUNS) >= 4


def _run(page_blocks: list[Block], cwd: Path, env: dict, url: str, gateway: str | None = None):
    result = subprocess.run(
        ["bash", "-c", script(page_blocks, url, gateway)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        "a block failed (the last '>>>' line names it)\n"
        f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )


@pytest.mark.parametrize(
    ("page", "mode"), RUNS, ids=[f"{p.relative_to(ROOT)}:{m}" for p, m in RUNS]
)
def test_shell_examples_run(page: Path, mode: str, tmp_path: Path):
    runnable = [b for b in blocks(page) if b.lang == "bash" and b.mode == mode]
    with _sandbox(tmp_path) as braze:
        env = _env(braze)
        if mode == "sandbox":
            _run(runnable, tmp_path, env, braze)
            return
        shop = tmp_path / "shop"
        subprocess.run(["headwater", "init", str(shop)], env=env, check=True, capture_output=True)
        with _process(["serve", "--project", str(shop)], tmp_path, "/healthz", env) as gateway:
            _run(runnable, shop, env, braze, gateway)


def test_a_failing_request_fails_the_page(sandbox: str, tmp_path: Path):
    """The check can fail: curl in an example fails on an HTTP error, like a wrong key."""
    block = Block(ROOT / "x.md", 1, "bash", "sandbox",
                  f"curl -s http://{DOCS_ADDRESS}/users/track -H 'Authorization: Bearer nope' -d '{{}}'\n")  # fmt: skip
    result = subprocess.run(
        ["bash", "-c", script([block], sandbox)], capture_output=True, text=True
    )
    assert result.returncode != 0 and "401" in result.stderr + result.stdout
