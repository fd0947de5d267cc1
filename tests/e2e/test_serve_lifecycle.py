"""A real ``headwater serve`` process stopped with SIGTERM in the middle of a flood of
posts: it exits 0 within its bound, hands every lease back, and after a restart every
object it answered 2xx is in the sandbox, without waiting for a lease to run out. And its
probes: /readyz follows the destination going down and coming back; /healthz stays up."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from gateway_harness import headwater_cli, wait_for_start, wait_until

from headwater.sandbox.testing import run_sandbox
from headwater.testing import free_port

EVENTS_PER_REQUEST = 25
CONCURRENCY = 16
STOP_AFTER_ACCEPTED = 3_000
SHUTDOWN_SECONDS = 6.0
EXIT_SLACK_SECONDS = 4.0  # interpreter teardown after the bound, on a loaded machine
LEASE_SECONDS = 300.0  # far past every deadline here: only a hand-back frees the rows
PROJECT = """
state: sqlite:///.headwater/state.db
destinations:
  braze:
    url: {url}
    api_key: ${{LIFECYCLE_BRAZE_KEY}}
    max_concurrency: 2
"""


def _project(tmp_path: Path, url: str) -> Path:
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "headwater.yml").write_text(PROJECT.format(url=url))
    return project


def _serve(project: Path, port: int, env: dict, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater", "serve", "--project", str(project),
         "--port", str(port), "--lease-seconds", str(LEASE_SECONDS),
         "--shutdown-seconds", str(SHUTDOWN_SECONDS)],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_start(process, f"http://127.0.0.1:{port}/healthz", log=log, status=200)
    return process


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return None


async def _flood(url: str, key: str, process: subprocess.Popen) -> tuple[set[int], float]:
    """Post events until the server stops answering; SIGTERM once enough were accepted.
    Returns the accepted sequence numbers and when the signal was sent."""
    accepted: set[int] = set()
    signalled_at = 0.0
    next_seq = 0

    async def client() -> None:
        nonlocal signalled_at, next_seq
        async with httpx.AsyncClient(
            timeout=10, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            while process.poll() is None:
                seqs = range(next_seq, next_seq + EVENTS_PER_REQUEST)
                next_seq += EVENTS_PER_REQUEST
                body = {"events": [
                    {"external_id": f"c{s}", "name": "lifecycle", "time": "2024-05-02T10:00:00Z",
                     "properties": {"seq": s}}
                    for s in seqs
                ]}  # fmt: skip
                try:
                    answer = await http.post(f"{url}/users/track", json=body)
                except httpx.HTTPError:
                    await asyncio.sleep(0.01)  # refused: the server is stopping
                    continue
                if answer.status_code == 201:
                    accepted.update(seqs)
                if not signalled_at and len(accepted) >= STOP_AFTER_ACCEPTED:
                    signalled_at = time.monotonic()
                    process.send_signal(signal.SIGTERM)

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return accepted, signalled_at


@pytest.mark.slow
def test_sigterm_during_a_flood_exits_0_in_time_and_loses_nothing(tmp_path):
    with run_sandbox() as sandbox:
        # Slow answers: rounds are still in flight when the deadline comes, and most of
        # what was accepted is still in the outbox when the process stops.
        sandbox.set_faults(latency_ms=700)
        project = _project(tmp_path, sandbox.url)
        env = {**os.environ, "LIFECYCLE_BRAZE_KEY": sandbox.key}
        key = headwater_cli(project, "keys", "create", "--name", "load", "--perm", "users.track",
                   env=env).strip().splitlines()[-1]  # fmt: skip
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = tmp_path / "serve.log"
        first = _serve(project, port, env, log)
        accepted, signalled_at = asyncio.run(_flood(url, key, first))
        first.wait(timeout=SHUTDOWN_SECONDS + 30)
        stopped_in = time.monotonic() - signalled_at
        assert first.returncode == 0, log.read_text()
        assert stopped_in < SHUTDOWN_SECONDS + EXIT_SLACK_SECONDS, stopped_in
        assert len(accepted) >= STOP_AFTER_ACCEPTED

        # Nothing left leased, and the rows handed back are not counted as failed tries.
        state = sqlite3.connect(project / ".headwater" / "state.db")
        leased, tried, waiting = state.execute(
            "SELECT count(lease_until), coalesce(max(attempts), 0), coalesce(sum(objects), 0) "
            "FROM outbox"
        ).fetchone()
        state.close()
        assert leased == 0
        assert tried == 0
        assert waiting > 0, "the flood should outpace delivery at 700 ms a request"

        sandbox.set_faults(latency_ms=0)
        second = _serve(project, port, env, log)
        try:

            def delivered() -> set[int]:
                return {
                    int(u["external_id"][1:])
                    for u in list(sandbox.sandbox.users.profiles.values())
                    if (u.get("custom_events") or {}).get("lifecycle")
                }

            # Far sooner than the 300 s lease: the rows were handed back.
            wait_until(lambda: accepted <= delivered(), timeout=60, interval=0.25)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=SHUTDOWN_SECONDS + 30)
        assert second.returncode == 0
        assert key not in log.read_text()


def _sandbox(port: int, key: str, db: Path, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater", "sandbox", "--port", str(port), "--key", key,
         "--db", str(db)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_start(process, f"http://127.0.0.1:{port}/segments/list", name="sandbox", log=log)
    return process


def _ready(url: str) -> tuple[int, dict] | None:
    try:
        answer = httpx.get(f"{url}/readyz", timeout=10)
    except httpx.HTTPError:
        return None
    return answer.status_code, answer.json()


def test_readyz_follows_the_destination_and_healthz_stays_up(tmp_path):
    key = "lifecycle-key"
    sandbox_port = free_port()
    sandbox_log = tmp_path / "sandbox.log"
    sandbox = _sandbox(sandbox_port, key, tmp_path / "sandbox.db", sandbox_log)
    project = _project(tmp_path, f"http://127.0.0.1:{sandbox_port}")
    env = {**os.environ, "LIFECYCLE_BRAZE_KEY": key}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = _serve(project, port, env, tmp_path / "serve.log")
    try:
        assert _ready(url) == (200, {"status": "ready",
                                     "checks": {"state": "ok", "destinations.braze": "ok"}})  # fmt: skip

        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(timeout=30)
        wait_until(lambda: (_ready(url) or (0,))[0] == 503, timeout=30, interval=0.2)
        status, body = _ready(url)
        assert body["status"] == "not ready"
        assert body["not_ready"] == ["destinations.braze"]
        assert body["checks"]["state"] == "ok"
        assert "ConnectError" in body["checks"]["destinations.braze"]
        assert _status(f"{url}/healthz") == 200  # alive, whatever the destination does

        sandbox = _sandbox(sandbox_port, key, tmp_path / "sandbox.db", sandbox_log)
        wait_until(lambda: (_ready(url) or (0,))[0] == 200, timeout=30, interval=0.2)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=SHUTDOWN_SECONDS + 30)
        sandbox.send_signal(signal.SIGTERM)
        sandbox.wait(timeout=30)
    assert serve.returncode == 0
