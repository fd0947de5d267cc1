"""Crash test: 20,000 events through a real ``headwater serve`` process, SIGKILLed mid-load
and restarted. Every event answered 2xx reaches the sandbox; duplicates can only come from
the batches in flight at the kill, and are counted and printed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gateway_harness import headwater_cli, wait_for_start, wait_until

from headwater.sandbox.testing import run_sandbox
from headwater.testing import free_port

TOTAL_EVENTS = 20_000
EVENTS_PER_REQUEST = 25
CONCURRENCY = 32
KILL_AFTER_ACCEPTED = 8_000
LEASE_SECONDS = 1.0
PROJECT = """
state: sqlite:///.headwater/state.db
destinations:
  braze:
    url: {url}
    api_key: ${{CRASH_BRAZE_KEY}}
"""


def _start(project: Path, port: int, env: dict, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater", "serve", "--project", str(project), "--port", str(port),
         "--lease-seconds", str(LEASE_SECONDS)],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_start(process, f"http://127.0.0.1:{port}/healthz", log=log, status=200)
    return process


async def _load(url: str, key: str, process: subprocess.Popen) -> set[int]:
    accepted: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for start in range(0, TOTAL_EVENTS, EVENTS_PER_REQUEST):
        queue.put_nowait(start)
    killed = False

    async def client() -> None:
        nonlocal killed
        async with httpx.AsyncClient(
            timeout=10, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            while not queue.empty():
                start = queue.get_nowait()
                seqs = range(start, min(start + EVENTS_PER_REQUEST, TOTAL_EVENTS))
                body = {"events": [
                    {"external_id": f"c{s}", "name": "crash_test", "time": "2024-05-02T10:00:00Z",
                     "properties": {"seq": s}}
                    for s in seqs
                ]}  # fmt: skip
                try:
                    answer = await http.post(f"{url}/users/track", json=body)
                except httpx.HTTPError:
                    continue
                if answer.status_code == 201:
                    accepted.update(seqs)
                if not killed and len(accepted) >= KILL_AFTER_ACCEPTED:
                    killed = True
                    process.send_signal(signal.SIGKILL)

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return accepted


@pytest.mark.slow
def test_every_accepted_event_survives_sigkill_and_restart(tmp_path, capsys):
    with run_sandbox() as sandbox:
        receiver_url = sandbox.url
        project = tmp_path / "project"
        project.mkdir()
        (project / "headwater.yml").write_text(PROJECT.format(url=receiver_url))
        env = {**os.environ, "CRASH_BRAZE_KEY": sandbox.key}
        out = headwater_cli(
            project, "keys", "create", "--name", "load", "--perm", "users.track", env=env
        )
        key = out.strip().splitlines()[-1]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "serve.log"
        first = _start(project, port, env, log)
        started = time.monotonic()
        accepted = asyncio.run(_load(url, key, first))
        loaded = time.monotonic() - started
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL
        assert KILL_AFTER_ACCEPTED <= len(accepted) < TOTAL_EVENTS
        second = _start(project, port, env, log)
        try:

            def delivered() -> dict[int, int]:
                # Read in-process: the sandbox's control API pages at 10,000 users.
                profiles = list(sandbox.sandbox.users.profiles.values())
                return {
                    int(u["external_id"][1:]): u["custom_events"]["crash_test"]["count"]
                    for u in profiles
                    if (u.get("custom_events") or {}).get("crash_test")
                }

            wait_until(lambda: accepted <= set(delivered()), timeout=40, interval=0.5)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
        counts = delivered()
        received = set(counts)
        duplicates = sum(counts.values()) - len(counts)
        elapsed = time.monotonic() - started
        with capsys.disabled():
            print(
                f"\ncrash test: {len(accepted)} accepted of {TOTAL_EVENTS}, "
                f"{len(received)} delivered, {duplicates} duplicates, "
                f"load {loaded:.1f}s, total {elapsed:.1f}s"
            )
        assert accepted <= received
        assert duplicates <= 2 * 8 * 75  # at most the rounds in flight at the kill
        assert key not in log.read_text()
