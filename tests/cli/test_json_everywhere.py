"""``--json`` on every command, as the README promises: the whole ``headwater --help`` tree
is walked, so a new command without it fails here unless ``NO_JSON`` says why."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.cli.output import NO_JSON

runner = CliRunner()


def commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every command a user can run: leaves, and groups that run on their own (``runs``)."""
    for name, command in group.commands.items():
        path = (*prefix, name)
        if hasattr(command, "commands"):  # a group
            if command.invoke_without_command:
                yield " ".join(path), command
            yield from commands(command, path)
        else:
            yield " ".join(path), command


def test_every_command_that_prints_a_result_takes_json() -> None:
    tree = dict(commands(typer.main.get_command(app)))  # type: ignore[arg-type]
    assert {
        "validate",
        "init",
        "sync",
        "runs",
        "runs show",
        "keys create",
        "sandbox keys list",
    } <= set(tree)

    missing = [
        name
        for name, command in tree.items()
        if name not in NO_JSON
        and not any("--json" in getattr(p, "opts", ()) for p in command.params)
    ]
    assert missing == []
    assert set(NO_JSON) <= set(tree), "NO_JSON names a command that no longer exists"


def test_validate_json_is_a_summary_or_the_problems(tmp_path: Path, monkeypatch) -> None:
    assert runner.invoke(app, ["init", str(tmp_path), "--json"]).exit_code == 0
    monkeypatch.delenv("BRAZE_API_KEY", raising=False)

    bad = runner.invoke(app, ["validate", "-p", str(tmp_path), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["problems"][0].endswith(
        "destinations.braze.api_key: environment variable BRAZE_API_KEY is not set"
    )

    monkeypatch.setenv("BRAZE_API_KEY", "sk-secret-value")
    good = runner.invoke(app, ["validate", "-p", str(tmp_path), "--json"])
    assert good.exit_code == 0
    summary = json.loads(good.stdout)
    assert summary["valid"] is True and summary["syncs"]["contacts"]["model"] == "contacts"
    assert "sk-secret-value" not in good.stdout


def test_sandbox_keys_create_list_and_revoke_in_json(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "sandbox.db")]
    created = runner.invoke(
        app, ["sandbox", "keys", "create", "--name", "ci", "--perm", "users.track", *db, "--json"]
    )
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout)["key"]

    listed = runner.invoke(app, ["sandbox", "keys", "list", *db, "--json"])
    (entry,) = json.loads(listed.stdout)
    assert (entry["name"], entry["permissions"], entry["revoked_at"]) == (
        "ci",
        ["users.track"],
        None,
    )
    assert key not in listed.stdout

    revoked = runner.invoke(app, ["sandbox", "keys", "revoke", "ci", *db, "--json"])
    assert json.loads(revoked.stdout) == {"revoked": "ci"}
    (entry,) = json.loads(runner.invoke(app, ["sandbox", "keys", "list", *db, "--json"]).stdout)
    assert entry["revoked_at"] is not None
