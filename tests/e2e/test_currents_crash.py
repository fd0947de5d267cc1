"""Crash test: Currents batches into a real ``headwater serve`` process, SIGKILLed mid-stream
and restarted, then every batch it did not acknowledge sent again (as Braze does, along
with some it did: Currents is at least once). Every event answered 200 is landed, and no
event is landed twice, though the kill may fall between a landing's files and its commit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
import httpx
import orjson
import psutil
import pytest
from gateway_harness import wait_for_start, wait_until

from headwater.testing import free_port

TOKEN = "crash-currents-token-01"
BATCHES = 300
CONCURRENCY = 8
KILL_AFTER_ACCEPTED = 100  # batches
PROJECT = "state: sqlite:///.headwater/state.db\ncurrents:\n  braze:\n    token: ${CRASH_CURRENTS_TOKEN}\n"


def _start(project: Path, port: int, env: dict, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater", "serve", "--project", str(project), "--port", str(port)],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_start(process, f"http://127.0.0.1:{port}/healthz", log=log, status=200)
    return process


def _batches() -> list[bytes]:
    bodies = []
    for b in range(BATCHES):
        events = [
            {"event_type": "users.behaviors.CustomEvent" if n % 3 else "users.behaviors.Purchase",
             "id": f"{b}-{n}-{uuid.uuid4().hex[:6]}", "time": 1_700_000_000,
             "user": {"external_user_id": f"u{b}"}, "properties": {"name": "e", "price": 1.5}}
            for n in range(100)
        ]  # fmt: skip
        bodies.append(orjson.dumps({"events": events}))
    return bodies


async def _send(
    url: str, bodies: list[bytes], kill: subprocess.Popen | None, orphans: list | None = None
) -> set[int]:
    accepted: set[int] = set()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(bodies)):
        queue.put_nowait(index)
    headers = {"Authorization": f"Bearer {TOKEN}", "Braze-Currents-Version": "1"}

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30, headers=headers) as http:
            while not queue.empty():
                index = queue.get_nowait()
                try:
                    answer = await http.post(f"{url}/currents/braze", content=bodies[index])
                except httpx.HTTPError:
                    continue
                if answer.status_code == 200:
                    accepted.add(index)
                if (
                    kill is not None
                    and len(accepted) >= KILL_AFTER_ACCEPTED
                    and kill.poll() is None
                ):
                    if orphans is not None:  # serve's landing process, left parentless
                        orphans.extend(psutil.Process(kill.pid).children(recursive=True))
                    kill.send_signal(signal.SIGKILL)

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return accepted


def _landed(landing: Path) -> tuple[int, int]:
    files = [str(f) for f in landing.glob("currents/braze/*/*.parquet")]
    if not files:
        return 0, 0
    with duckdb.connect() as db:
        query = "SELECT count(*), count(DISTINCT id) FROM read_parquet(?, union_by_name=true)"
        return db.execute(query, [files]).fetchone()


@pytest.mark.slow
def test_nothing_acknowledged_is_lost_nothing_landed_twice(tmp_path, capsys):
    project = tmp_path / "project"
    project.mkdir()
    (project / "headwater.yml").write_text(PROJECT)
    env = {**os.environ, "CRASH_CURRENTS_TOKEN": TOKEN}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    bodies = _batches()
    first = _start(project, port, env, log)
    orphans: list = []
    accepted = asyncio.run(_send(url, bodies, first, orphans))
    first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL
    _gone, alive = psutil.wait_procs(orphans, timeout=60)  # they follow serve out
    assert orphans and not alive
    assert KILL_AFTER_ACCEPTED <= len(accepted) < BATCHES
    second = _start(project, port, env, log)
    try:
        # Braze resends what was not acknowledged, and (at least once) a few that were.
        again = [i for i in range(BATCHES) if i not in accepted] + sorted(accepted)[:20]
        resent = asyncio.run(_send(url, [bodies[i] for i in again], None))
        assert len(resent) == len(again)
        landing = project / ".headwater" / "landing"
        wait_until(lambda: _landed(landing)[1] >= BATCHES * 100, timeout=120, interval=0.5)
        rows, distinct = _landed(landing)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    with capsys.disabled():
        print(f"\ncurrents crash test: {len(accepted)} batches acknowledged before the kill, "
              f"{rows} rows landed, {distinct} distinct ids")  # fmt: skip
    assert second.returncode == 0
    assert distinct == BATCHES * 100  # every acknowledged (and re-sent) event landed
    assert rows == distinct  # none twice
    assert TOKEN not in log.read_text()
