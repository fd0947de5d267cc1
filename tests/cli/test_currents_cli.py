"""``headwater currents status`` and ``rejected`` read the receivers' state: pending events
per receiver, and the refused batches with their reasons (and bodies on request)."""

from __future__ import annotations

import json

from sqlalchemy import insert
from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.state.currents import batch_row, currents_batches, currents_rejected, rejected_row
from headwater.state.db import open_state


def test_status_and_rejected(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = open_state(url)
    with engine.begin() as conn:
        conn.execute(insert(currents_batches), [batch_row("braze", b"{}", ["a", "b"], 1.0)])
        conn.execute(insert(currents_rejected), [
            rejected_row("braze", 400, "1 malformed event(s): events[3].id: ...", b"[1]", 2.0)
        ])  # fmt: skip
    engine.dispose()
    runner = CliRunner()
    status = runner.invoke(app, ["currents", "status", "--state", url, "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output) == {"braze": {"pending": 2, "remembered": 0, "rejected": 1}}
    listed = runner.invoke(app, ["currents", "rejected", "--state", url, "--body"])
    assert listed.exit_code == 0, listed.output
    assert "events[3].id" in listed.output and "[1]" in listed.output
    as_json = runner.invoke(app, ["currents", "rejected", "--state", url, "--json"])
    assert json.loads(as_json.output)[0]["body"] == "[1]"
