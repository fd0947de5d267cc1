"""``headwater sandbox`` as a user runs it: a separate process on a real port, keys made
with the CLI while it runs, and no key text ever in its output."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_harness import wait_for_start

START_KEY = "cli-start-key-5f1e2d3c4b5a"
BAD_KEY = "cli-wrong-key-9a8b7c6d5e4f"
TRACK = {"attributes": [{"external_id": "u1", "tier": "gold"}]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "headwater", "sandbox", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def cli_sandbox(tmp_path: Path):
    db = str(tmp_path / "sandbox.db")
    port = _free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "headwater", "sandbox", "--db", db, "--port", str(port),
             "--key", START_KEY],
            stdout=stdout,
            stderr=stderr,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_for_start(process, f"{url}/_sandbox/counters", name="sandbox", log=err)
        state = {"url": url, "db": db, "process": process, "out": out, "err": err}
        try:
            yield state
        finally:
            process.terminate()
            process.wait(timeout=30)


def _post(url: str, key: str) -> httpx.Response:
    return httpx.post(f"{url}/users/track", json=TRACK, headers={"Authorization": f"Bearer {key}"})


def _until(check, seconds: float = 3.0) -> float:
    """Seconds until ``check()`` holds (fails after ``seconds``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - started


def test_cli_sandbox_accepts_keys_made_while_running_and_never_prints_keys(cli_sandbox):
    url = cli_sandbox["url"]
    assert _post(url, START_KEY).status_code == 201
    refused = _post(url, BAD_KEY)
    assert refused.status_code == 401
    assert BAD_KEY not in refused.text

    made = _cli("keys", "create", "--db", cli_sandbox["db"], "--name", "partner",
                "--perm", "users.track")  # fmt: skip
    assert made.returncode == 0, made.stderr
    new_key = made.stdout.strip()
    assert len(new_key) >= 16
    assert _until(lambda: _post(url, new_key).status_code == 201) < 1.5

    listed = _cli("keys", "list", "--db", cli_sandbox["db"])
    assert "partner" in listed.stdout
    assert new_key not in listed.stdout + listed.stderr

    export = httpx.post(f"{url}/users/export/ids", json={"external_ids": ["u1"]},
                        headers={"Authorization": f"Bearer {new_key}"})  # fmt: skip
    assert export.status_code == 403
    assert export.json() == {"message": "Access Denied"}

    revoked = _cli("keys", "revoke", "partner", "--db", cli_sandbox["db"])
    assert revoked.returncode == 0, revoked.stderr
    assert _until(lambda: _post(url, new_key).status_code == 401) < 1.5
    assert _cli("keys", "revoke", "partner", "--db", cli_sandbox["db"]).returncode == 1

    for key in (START_KEY, BAD_KEY, new_key):  # quoted and malformed forms too
        httpx.post(f"{url}/users/track", json=TRACK, headers={"Authorization": f'Bearer "{key}"'})
        httpx.post(f"{url}/users/track", content=b"{", headers={"Authorization": f"Bearer {key}"})

    process = cli_sandbox["process"]
    process.terminate()
    process.wait(timeout=30)
    output = cli_sandbox["out"].read_text() + cli_sandbox["err"].read_text()
    assert "Braze sandbox on http://127.0.0.1" in output
    for key in (START_KEY, BAD_KEY, new_key):
        assert key not in output


@contextlib.contextmanager
def _sandbox_process(*args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``headwater sandbox ARGS`` on a free port until the block ends (stderr kept)."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "headwater", "sandbox", *args, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_start(process, f"{url}/_sandbox/counters", name="sandbox")
        yield url, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_cli_sandbox_keeps_data_across_restarts(cli_sandbox, tmp_path):
    assert _post(cli_sandbox["url"], START_KEY).status_code == 201
    cli_sandbox["process"].terminate()
    cli_sandbox["process"].wait(timeout=30)
    with _sandbox_process("--db", cli_sandbox["db"]) as (url, process):
        user = httpx.get(f"{url}/_sandbox/users/u1").json()
        assert user["custom_attributes"] == {"tier": "gold"}
        # the --key of the first run was memory only
        assert _post(url, START_KEY).status_code == 401
    assert "no API keys yet" in process.stderr.read().decode()


def _reachable(url: str) -> bool:
    try:
        httpx.get(f"{url}/_sandbox/counters", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def test_keys_create_refuses_unknown_permissions(tmp_path):
    result = _cli("keys", "create", "--db", str(tmp_path / "s.db"), "--name", "x",
                  "--perm", "users.fly")  # fmt: skip
    assert result.returncode == 2
    assert "users.fly" in result.stderr


def test_a_sandbox_on_every_interface_says_its_control_api_stays_local(tmp_path):
    args = ("--db", str(tmp_path / "s.db"), "--host", "0.0.0.0", "--key", START_KEY)
    with _sandbox_process(*args) as (url, process):
        assert httpx.get(f"{url}/_sandbox/counters").status_code == 200  # this machine
    said = " ".join(process.stderr.read().decode().split())
    assert "/_sandbox/* answers only callers on this machine" in said
    assert "--control-token" in said
