"""``headwater users``: passwords from the prompt or the environment, stored hashed;
tokens printed once; mistakes are one line, not a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.state.db import open_state
from headwater.state.users import authenticate, console_users, user_for_token


def test_users_create_list_token_and_delete(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    runner = CliRunner()
    env = {"HEADWATER_USER_PASSWORD": "a long enough secret"}
    made = runner.invoke(app, ["users", "create", "ada", "--state", url], env=env)
    assert made.exit_code == 0, made.output
    ro = runner.invoke(app, ["users", "create", "rita", "--read-only", "--state", url], env=env)
    assert "read-only" in ro.output
    again = runner.invoke(app, ["users", "create", "ada", "--state", url], env=env)
    assert again.exit_code == 2 and "exists already" in again.output
    short = runner.invoke(app, ["users", "create", "bob", "--state", url],
                          env={"HEADWATER_USER_PASSWORD": "short"})  # fmt: skip
    assert short.exit_code == 2 and "at least 10" in short.output
    prompted = runner.invoke(app, ["users", "create", "cy", "--state", url],
                             input="typed secret 123\ntyped secret 123\n")  # fmt: skip
    assert prompted.exit_code == 0, prompted.output
    engine = open_state(url)
    with engine.connect() as conn:
        hashes = [row.password_hash for row in conn.execute(console_users.select())]
    assert all(h.startswith("scrypt$") and "secret" not in h for h in hashes)
    assert authenticate(engine, "cy", "typed secret 123").name == "cy"
    assert authenticate(engine, "cy", "wrong") is None
    token = runner.invoke(app, ["users", "token", "ada", "--state", url]).stdout.strip()
    assert token.startswith("hwu_") and user_for_token(engine, token).name == "ada"
    listed = runner.invoke(app, ["users", "list", "--json", "--state", url])
    assert '"read_only": true' in listed.output.replace('"read_only":true', '"read_only": true')
    runner.invoke(app, ["users", "token", "ada", "--revoke", "--state", url])
    assert user_for_token(engine, token) is None
    assert runner.invoke(app, ["users", "delete", "ada", "--state", url]).exit_code == 0
    assert runner.invoke(app, ["users", "delete", "ada", "--state", url]).exit_code == 2
