"""A database that cannot be reached (the state store, a source) ends a command with one
line naming it, password masked: through the real ``headwater`` executable, on a port
nothing listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

PASSWORD = "s3cr3t-Pw"
COMMANDS = [
    ["runs"],
    ["runs", "show", "1"],
    ["sync", "contacts"],
    ["sync", "contacts", "--dry-run", "--json"],
    ["serve", "--port", "0"],
    ["keys", "list"],
    ["keys", "create", "--name", "extole", "--perm", "users.track"],
    ["keys", "revoke", "extole"],
    ["dlq", "list"],
    ["dlq", "replay", "--all"],
]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_project(root: Path, *, state: str, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "c.csv").write_text("id\n1\n")
    (root / "headwater.yml").write_text(
        f"state: {state}\n"
        "destinations:\n  braze: {url: 'http://127.0.0.1:9', api_key: k}\n"
        f"sources:\n  app: {{type: sql, url: '{source}'}}\n"
        "models:\n  contacts: {source: app, sql: select * from people, primary_key: id, "
        "columns: {id: {}}}\n"
        "syncs:\n  contacts: {model: contacts, destination: braze, "
        "identifier: {external_id: id}, mapping: {a: id}}\n"
    )
    return root


def headwater(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "headwater", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_an_unreachable_state_store_is_one_line_naming_it(
    tmp_path: Path, command: list[str]
) -> None:
    port = closed_port()
    url = f"postgresql://hw:{PASSWORD}@127.0.0.1:{port}/hwstate"
    project = write_project(tmp_path, state=url, source="sqlite:///app.db")

    result = headwater(*command, cwd=project)

    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, output
    assert "Traceback" not in output and PASSWORD not in output
    assert output.splitlines() == [
        f"error: state: cannot reach database postgresql://hw:***@127.0.0.1:{port}/hwstate: "
        f'connection failed: connection to server at "127.0.0.1", port {port} failed: '
        "Connection refused"
    ]


def test_an_unreachable_source_database_fails_the_run_with_one_line_naming_it(
    tmp_path: Path,
) -> None:
    port = closed_port()
    url = f"postgresql://hw:{PASSWORD}@127.0.0.1:{port}/app"
    project = write_project(tmp_path, state="sqlite:///.headwater/state.db", source=url)

    result = headwater("sync", "contacts", cwd=project)

    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, output
    assert "Traceback" not in output and PASSWORD not in output
    errors = [line for line in output.splitlines() if "error" in line.lower()]
    assert errors == [
        f"error: source 'app': cannot reach database postgresql+psycopg://hw:***@127.0.0.1:"
        f'{port}/app: connection failed: connection to server at "127.0.0.1", port {port} '
        "failed: Connection refused"
    ]
