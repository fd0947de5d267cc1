"""A scheduled sync run by a real ``headwater serve`` process against the sandbox: it runs
with nothing else installed, a manual ``headwater sync`` meanwhile is refused with the
running run's id, slots that come due meanwhile are recorded as skipped, the schedules show
through the CLI and the API, and a SIGKILL mid-run is followed by a restart whose slot
delivers everything (the killed run marked interrupted).

Every wait here waits for an outcome (a run, users in the sandbox) with a generous bound;
no assertion depends on when a slot falls."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from gateway_harness import wait_for_start, wait_until
from tests.syncs.test_engine import assert_sandbox_matches, contact, make_project, write_contacts

from headwater.sandbox.testing import run_sandbox
from headwater.state import runs
from headwater.state.db import open_state
from headwater.testing import free_port

ROWS = 3000


def cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args, "--project", str(root)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def start_serve(root: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater", "serve", "--project", str(root), "--port", str(port),
         *extra],
        stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for_start(process, f"http://127.0.0.1:{port}/healthz", log=log, status=200)
    return process


def history(state) -> list[runs.RunRecord]:
    return list(reversed(runs.list_runs(state, limit=500, sync="contacts")))


def test_serve_runs_a_scheduled_sync_refuses_a_manual_one_and_resumes_after_sigkill(tmp_path):
    with run_sandbox() as sandbox:
        root = make_project(tmp_path, sandbox.url, sandbox.key)
        config = root / "headwater.yml"
        config.write_text(
            config.read_text().replace("max_concurrency: 4", "max_concurrency: 2")
            + "    schedule: {every: 2s}\n"
        )
        rows = [contact(i) for i in range(ROWS)]
        write_contacts(root / "data/contacts.csv", rows)
        state = open_state(f"sqlite:///{root / '.headwater' / 'state.db'}")
        sandbox.set_faults(latency_ms=3000)  # the first run stays running while we look
        port, log = free_port(), tmp_path / "serve.log"
        server = start_serve(root, port, log)
        try:
            wait_until(lambda: any(r.status == "running" for r in history(state)), timeout=60,
                       interval=0.1)  # fmt: skip
            first = history(state)[0]

            manual = cli(root, "sync", "contacts", "--json")
            assert manual.returncode == 1
            assert f"already running (run {first.id}," in json.loads(manual.stdout)["error"]

            listed = cli(root, "schedules", "--json")
            assert listed.returncode == 0, listed.stderr
            (entry,) = json.loads(listed.stdout)
            assert entry["job"] == "contacts" and entry["schedule"] == "every 2s"
            assert entry["status"] == "running" and entry["last_run"]["id"] == first.id
            assert len(entry["next_fire_times"]) == 5

            sandbox.set_faults(latency_ms=150)
            wait_until(lambda: len(sandbox.users(limit=ROWS)) >= ROWS // 4, timeout=60,
                       interval=0.05)  # fmt: skip
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            assert len(sandbox.users(limit=ROWS)) < ROWS, "the kill came too late to test it"
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=30)
        skipped = [r for r in history(state) if r.status == "skipped"]
        assert skipped and all(f"run {first.id} was still running" in r.error for r in skipped)

        sandbox.set_faults(latency_ms=0)
        rows[1] = contact(1, points="424242")  # the model moves on while the hub is down
        write_contacts(root / "data/contacts.csv", rows)
        server = start_serve(root, port, log)
        try:
            wait_until(
                lambda: any(r.status == "succeeded" for r in history(state)), timeout=120,
                interval=0.2,
            )  # fmt: skip
            assert runs.get_run(state, first.id).status == "interrupted"
            assert_sandbox_matches(sandbox, rows)

            key = cli(root, "keys", "create", "--name", "ops", "--perm", "schedules.read")
            reader = key.stdout.strip().splitlines()[-1]
            api = f"http://127.0.0.1:{port}/api/schedules"
            listing = httpx.get(api, headers={"Authorization": f"Bearer {reader}"}).json()
            assert [s["job"] for s in listing["schedules"]] == ["contacts"]
            denied = httpx.post(
                f"{api}/contacts/pause", headers={"Authorization": f"Bearer {reader}"}
            )
            assert denied.status_code == 403
            key = cli(root, "keys", "create", "--name", "ops-w", "--perm", "schedules.write")
            writer = key.stdout.strip().splitlines()[-1]
            paused = httpx.post(
                f"{api}/contacts/pause", headers={"Authorization": f"Bearer {writer}"}
            )
            assert paused.status_code == 200 and paused.json() == {
                "job": "contacts",
                "paused": True,
            }
            shown = json.loads(cli(root, "schedules", "--json").stdout)[0]
            assert shown["paused"] and shown["status"] == "paused"
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        state.dispose()


def test_sigterm_during_a_scheduled_sync_exits_0_records_it_interrupted_and_it_resumes(tmp_path):
    with run_sandbox() as sandbox:
        root = make_project(tmp_path, sandbox.url, sandbox.key)
        config = root / "headwater.yml"
        config.write_text(
            config.read_text().replace("max_concurrency: 4", "max_concurrency: 2")
            + "    schedule: {every: 2s}\n"
        )
        rows = [contact(i) for i in range(ROWS)]
        write_contacts(root / "data/contacts.csv", rows)
        state = open_state(f"sqlite:///{root / '.headwater' / 'state.db'}")
        sandbox.set_faults(latency_ms=500)  # ~10 s for the run: longer than the stop's bound
        port, log = free_port(), tmp_path / "serve.log"
        server = start_serve(root, port, log, "--shutdown-seconds", "6")
        try:
            wait_until(lambda: len(sandbox.users(limit=ROWS)) >= ROWS // 10, timeout=120,
                       interval=0.05)  # fmt: skip
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=60) == 0, log.read_text()
        finally:
            if server.poll() is None:
                server.kill()
                server.wait(timeout=30)
        assert len(sandbox.users(limit=ROWS)) < ROWS, "the stop came too late to test it"
        (first,) = [r for r in history(state) if r.status not in ("skipped",)]
        assert first.status == "interrupted", log.read_text()
        with state.connect() as conn:  # written down, not only inferred from a dead pid
            stored = conn.execute(runs.runs.select().where(runs.runs.c.id == first.id))
            assert stored.mappings().one()["status"] == "interrupted"

        sandbox.set_faults(latency_ms=0)
        server = start_serve(root, port, log)
        try:
            wait_until(lambda: any(r.status == "succeeded" for r in history(state)), timeout=120,
                       interval=0.2)  # fmt: skip
            assert runs.get_run(state, first.id).status == "interrupted"
            assert_sandbox_matches(sandbox, rows)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        state.dispose()
