"""``headwater streams``, ``pause`` and ``resume`` as a user runs them: the pause is in the
state store (a serve process holds the stream's rows from then on) and unknown names are
refused naming the streams there are."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.state.db import open_state
from headwater.state.pauses import list_pauses

PROJECT = """\
state: sqlite:///.headwater/state.db
destinations:
  braze: {url: "http://127.0.0.1:9", api_key: k}
streams:
  shop:
    preset: generic
    auth: {type: bearer, token: shop-token-5}
    mapping:
      attributes: [{external_id: "{{ user }}"}]
"""

runner = CliRunner()


def streams(root: Path, *args: str):
    return runner.invoke(app, ["streams", *args, "--project", str(root)])


def test_pause_and_resume_a_stream(tmp_path: Path):
    (tmp_path / "headwater.yml").write_text(PROJECT)
    listed = json.loads(streams(tmp_path, "--json").output)
    assert [(e["stream"], e["paused"]) for e in listed] == [("gateway", False), ("shop", False)]
    paused = streams(tmp_path, "pause", "shop")
    assert paused.exit_code == 0 and "Paused shop" in paused.output, paused.output
    state = open_state(f"sqlite:///{tmp_path / '.headwater/state.db'}")
    assert list_pauses(state)["shop"].paused_by == "cli"
    assert "shop: paused since" in streams(tmp_path).output
    resumed = streams(tmp_path, "resume", "shop", "--json")
    assert json.loads(resumed.output) == {"stream": "shop", "paused": False, "rows": 0}
    assert not list_pauses(state)


def test_an_unknown_stream_names_the_streams_there_are(tmp_path: Path):
    (tmp_path / "headwater.yml").write_text(PROJECT)
    result = streams(tmp_path, "pause", "shopp")
    assert result.exit_code == 2
    assert "no stream named 'shopp' (streams: gateway, shop)" in result.output
