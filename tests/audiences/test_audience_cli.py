"""``headwater audiences``: list with members per split, sync (and --dry-run), history."""

from __future__ import annotations

import json

from tests.audiences.people import person, write_people, write_project
from tests.audiences.test_audience_sync import VIP
from typer.testing import CliRunner

from headwater.cli.app import app

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_list_sync_and_history(tmp_path, sandbox):
    root = write_project(tmp_path, sandbox.url, sandbox.key, VIP)
    write_people(root, [person(i) for i in range(130)])
    p = ("--project", str(root))
    listed = json.loads(cli("audiences", *p, "--json").output)
    assert [s["members"] for s in listed[0]["splits"]] == [0, 0, 0]
    dry = json.loads(cli("audiences", "sync", "vip", "--dry-run", *p, "--json").output)
    assert dry[0]["status"] == "dry run" and dry[0]["counts"]["added"] == 30
    done = cli("audiences", "sync", *p)
    assert done.exit_code == 0, done.output
    assert "succeeded" in done.output
    listed = json.loads(cli("audiences", *p, "--json").output)
    splits = {s["split"]: s for s in listed[0]["splits"]}
    assert sum(s["members"] for s in splits.values()) == 30
    assert splits["a"]["attribute"] == "AIQ_vip_a" and splits["holdout"]["attribute"] is None
    assert splits["b"]["slots"] == [[4500, 8999]]
    table = cli("audiences", *p)
    assert "AIQ_vip_b" in table.output and "(sent nothing)" in table.output
    stays = json.loads(cli("audiences", "history", "vip", "--person", "P0120", *p, "--json").output)
    assert [s["person_id"] for s in stays] == ["P0120"] and stays[0]["left_at"] is None
    assert "P0120" in cli("audiences", "history", "vip", *p).output
    runs = json.loads(cli("runs", *p, "--json").output)
    assert runs[0]["kind"] == "audience" and runs[0]["counts"]["added"] == 30


def test_an_unknown_audience_is_one_line(tmp_path, sandbox):
    root = write_project(tmp_path, sandbox.url, sandbox.key, VIP)
    write_people(root, [person(1)])
    result = runner.invoke(app, ["audiences", "sync", "nope", "--project", str(root)])
    assert result.exit_code == 2
    assert "no audience named 'nope' (audiences: vip)" in result.output
    assert "Traceback" not in result.output
