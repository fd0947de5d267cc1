"""``headwater keys`` and ``headwater dlq`` from the command line, on a project's state."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.state.db import open_state
from headwater.state.dead_letters import park_objects
from headwater.state.keys import KeyRing, hash_key, list_keys
from headwater.state.outbox import Outbox, OutboxEntry

PROJECT = """
state: sqlite:///.headwater/state.db
destinations:
  braze: {url: "http://127.0.0.1:9", api_key: "${CLI_TEST_KEY}"}
"""


def _project(tmp_path, monkeypatch):
    (tmp_path / "headwater.yml").write_text(PROJECT)
    monkeypatch.setenv("CLI_TEST_KEY", "not-used-here")
    return ["--project", str(tmp_path)]


def test_keys_are_printed_once_stored_hashed_listed_and_revoked(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch)
    runner = CliRunner()
    created = runner.invoke(
        app, ["keys", "create", "--name", "extole", "--perm", "users.track", *project]
    )
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("hwk_") and len(key) > 40
    engine = open_state(f"sqlite:///{tmp_path / '.headwater' / 'state.db'}")
    with engine.connect() as conn:
        dump = "\n".join(str(row) for row in conn.exec_driver_sql("select * from gateway_keys"))
    assert key not in dump and hash_key(key) in dump
    assert KeyRing(engine).lookup(key).name == "extole"

    listed = runner.invoke(app, ["keys", "list", "--json", *project])
    (entry,) = json.loads(listed.output)
    assert entry["name"] == "extole" and entry["permissions"] == ["users.track"]
    assert key not in listed.output

    bad = runner.invoke(app, ["keys", "create", "--name", "x", "--perm", "users.nope", *project])
    assert bad.exit_code == 1 and "unknown permission" in bad.output

    revoked = runner.invoke(app, ["keys", "revoke", "extole", *project])
    assert revoked.exit_code == 0
    assert not list_keys(engine)[0].active
    assert KeyRing(engine).lookup(key) is None


def test_dlq_list_and_replay(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch)
    engine = open_state(f"sqlite:///{tmp_path / '.headwater' / 'state.db'}")
    box = Outbox(engine)
    asyncio.run(box.enqueue([OutboxEntry("extole", "braze", "events", b'{"name":"e"}')] * 3))
    (row,) = box.claim("braze", 10)
    with engine.begin() as conn:
        box.ack([row.id], conn)
        park_objects(conn, [(row, line, f"rejected {n}") for n, line in enumerate(row.lines())])
    runner = CliRunner()
    listed = runner.invoke(app, ["dlq", "list", "--json", *project])
    letters = json.loads(listed.output)
    assert [d["reason"] for d in letters] == [f"rejected {n}" for n in range(3)]
    assert letters[0]["object"] == {"name": "e"}
    one = runner.invoke(app, ["dlq", "replay", str(letters[0]["id"]), *project])
    assert one.exit_code == 0 and "Replayed 1" in one.output
    rest = runner.invoke(app, ["dlq", "replay", "--all", *project])
    assert "Replayed 2" in rest.output
    assert box.depth() == 3
    table = runner.invoke(app, ["dlq", "list", *project])
    assert "0 dead letter(s)" in table.output
    box.close()


SERVE_PROJECT = """
state: sqlite:///.headwater/state.db
destinations:
  braze: {{url: "{url}", api_key: "${{SERVE_TEST_BRAZE_KEY}}"}}
streams:
  extole:
    preset: extole
    auth: {{type: basic, username: extole, password: "${{SERVE_TEST_EXTOLE_SECRET}}"}}
    content: {{attributes: [share_link], token: "${{SERVE_TEST_CONTENT_TOKEN}}"}}
"""


def test_serve_runs_streams_from_the_project_file(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
    from gateway_harness import RECEIVER_KEY, fake_braze, wait_for_start, wait_until

    from headwater.testing import free_port

    case = Path(__file__).resolve().parents[1] / "cases" / "extole" / "created_share_link.json"
    with fake_braze() as (fake, url):
        (tmp_path / "headwater.yml").write_text(SERVE_PROJECT.format(url=url))
        env = {**os.environ, "SERVE_TEST_BRAZE_KEY": RECEIVER_KEY,
               "SERVE_TEST_EXTOLE_SECRET": "s3cret-extole", "SERVE_TEST_CONTENT_TOKEN": "ct"}  # fmt: skip
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "headwater", "serve", "--project", str(tmp_path), "--port",
             str(port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_start(process, f"{base}/healthz")
            answer = httpx.post(
                f"{base}/hooks/extole", content=case.read_bytes(), auth=("extole", "s3cret-extole")
            )
            assert answer.status_code == 202, answer.text
            wait_until(lambda: fake.events("extole_created_share_link"))
            content = httpx.get(f"{base}/content/extole/cust-1001", params={"token": "ct"})
            assert content.json() == {"share_link": "https://refer.shop.example/ada"}
            # A second serve on the same SQLite file is refused, naming the first.
            second = subprocess.run(
                [sys.executable, "-m", "headwater", "serve", "--project", str(tmp_path),
                 "--port", str(free_port())],
                env=env, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert second.returncode == 1 and "Traceback" not in second.stderr
            assert f"another `headwater serve` (pid {process.pid})" in second.stderr
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=20)[0].decode()
    assert process.returncode in (
        0,
        -signal.SIGTERM,
    )  # uvicorn re-raises SIGTERM after a clean stop
    assert "Traceback" not in output
    assert "s3cret-extole" not in output and RECEIVER_KEY not in output


def test_serve_reports_stream_config_problems_by_name(tmp_path):
    import subprocess
    import sys

    (tmp_path / "headwater.yml").write_text(
        "destinations:\n  braze: {url: 'http://127.0.0.1:9', api_key: k}\n"
        "streams:\n  extole: {preset: extole, auth: {type: basic, username: e}}\n"
        "  shop: {preset: generic, auth: {type: bearer, token: t}, destination: nowhere,"
        " mapping: {events: [{name: x}]}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "headwater", "serve", "--project", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1
    assert "headwater.yml:4: streams.extole.auth.password: field required" in done.stderr
    assert (
        "headwater.yml:5: streams.shop.destination: no destination named 'nowhere'" in done.stderr
    )


def test_keys_revoke_takes_a_name_and_ids_only_with_the_id_option(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch)
    runner = CliRunner()
    for name in ("alpha", "1"):
        made = runner.invoke(app, ["keys", "create", "--name", name, "--perm", "users.track",
                                   *project])  # fmt: skip
        assert made.exit_code == 0, made.output
    engine = open_state(f"sqlite:///{tmp_path / '.headwater' / 'state.db'}")
    alpha_id = next(k.id for k in list_keys(engine) if k.name == "alpha")
    assert alpha_id == 1

    revoked = runner.invoke(app, ["keys", "revoke", "1", *project])
    assert revoked.exit_code == 0, revoked.output
    assert "1 (id 2)" in revoked.output
    assert {k.name: k.active for k in list_keys(engine)} == {"alpha": True, "1": False}

    by_id = runner.invoke(app, ["keys", "revoke", "--id", str(alpha_id), *project])
    assert by_id.exit_code == 0 and "alpha (id 1)" in by_id.output
    assert not any(k.active for k in list_keys(engine))

    neither = runner.invoke(app, ["keys", "revoke", *project])
    both = runner.invoke(app, ["keys", "revoke", "alpha", "--id", "1", *project])
    assert neither.exit_code == both.exit_code == 1
    missing = runner.invoke(app, ["keys", "revoke", "--id", "99", *project])
    assert missing.exit_code == 1 and "no active key with id 99" in missing.output


def test_keys_create_refuses_a_destination_the_project_does_not_have(tmp_path, monkeypatch):
    project = _project(tmp_path, monkeypatch)
    runner = CliRunner()
    refused = runner.invoke(app, ["keys", "create", "--name", "x", "--perm", "users.track",
                                  "--destination", "brzae", *project])  # fmt: skip
    assert refused.exit_code == 1
    assert "no destination named 'brzae'" in refused.output
    assert "destinations: braze" in refused.output
    engine = open_state(f"sqlite:///{tmp_path / '.headwater' / 'state.db'}")
    assert list_keys(engine) == []
    made = runner.invoke(app, ["keys", "create", "--name", "x", "--perm", "users.track",
                               "--destination", "braze", *project])  # fmt: skip
    assert made.exit_code == 0, made.output
