"""``headwater sandbox --campaign/--canvas/--catalog``: start with campaigns declared, as a
real process on a real port."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx
from gateway_harness import wait_for_start
from typer.testing import CliRunner

from headwater.cli.app import app

KEY = "catalog-test-key"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_sandbox_starts_with_the_campaigns_and_canvases_it_is_given(tmp_path: Path):
    (tmp_path / "catalog.yaml").write_text(
        "campaigns:\n  - {id: spring-sale, name: Spring sale, tags: [promo]}\n"
        "canvases:\n  - {id: onboarding, name: Onboarding, status: paused}\n"
    )
    port = _free_port()
    command = [sys.executable, "-m", "headwater", "sandbox", "--db", ":memory:"]
    command += ["--port", str(port), "--key", KEY, "--catalog", str(tmp_path / "catalog.yaml")]
    command += ["--campaign", "welcome-loyal=Welcome, loyal customer", "--canvas", "winback"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_start(process, f"{url}/_sandbox/campaigns", name="sandbox", status=200)
        auth = {"Authorization": f"Bearer {KEY}"}
        campaigns = httpx.get(f"{url}/campaigns/list", headers=auth, timeout=10).json()
        assert {(c["id"], c["name"]) for c in campaigns["campaigns"]} == {
            ("spring-sale", "Spring sale"),
            ("welcome-loyal", "Welcome, loyal customer"),
        }
        canvases = httpx.get(f"{url}/_sandbox/canvases", timeout=10).json()["canvases"]
        assert {(c["id"], c["status"]) for c in canvases} == {
            ("onboarding", "paused"),
            ("winback", "active"),
        }
        send = {"campaign_id": "welcome-loyal", "recipients": [{"external_user_id": "u1"}]}
        sent = httpx.post(f"{url}/campaigns/trigger/send", headers=auth, json=send, timeout=10)
        assert sent.status_code == 201, sent.text
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_bad_catalog_stops_the_sandbox_before_it_starts(tmp_path: Path):
    (tmp_path / "bad.yaml").write_text("campaigns:\n  - {id: x}\n")  # no name
    runner = CliRunner()
    result = runner.invoke(
        app, ["sandbox", "--db", ":memory:", "--catalog", str(tmp_path / "bad.yaml")]
    )
    assert result.exit_code == 2 and "name" in result.output
    result = runner.invoke(app, ["sandbox", "--db", ":memory:", "--campaign", "=Nameless"])
    assert result.exit_code == 2 and "give an id" in result.output
