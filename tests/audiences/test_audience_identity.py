"""An audience over an identity model: the example shop's resolved people."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from headwater.audiences import run_audience
from headwater.cli.app import app
from headwater.config import load_project

AUDIENCE = """
  known:
    model: people
    where: "customer_id IS NOT NULL AND email LIKE '%@%'"
    destination: braze
    identifier: {external_id: customer_id}
    splits: {a: 50, b: 50}
"""


def test_an_audience_over_resolved_people_lands_on_their_crm_ids(tmp_path, sandbox, monkeypatch):
    monkeypatch.setenv("BRAZE_URL", sandbox.url)
    monkeypatch.setenv("BRAZE_API_KEY", sandbox.key)
    result = CliRunner().invoke(app, ["init", str(tmp_path / "shop")])
    assert result.exit_code == 0, result.output
    root = tmp_path / "shop"
    project_file = root / "headwater.yml"
    text = project_file.read_text(encoding="utf-8")
    # Beside the example's own audiences: the first line of the section, then ours.
    text = re.sub(r"(?m)^audiences:.*$", lambda m: m.group(0) + AUDIENCE.rstrip(), text, count=1)
    project_file.write_text(text, encoding="utf-8")
    report = run_audience(load_project(root), "known")
    assert report.status == "succeeded", report.error
    assert report.added == sum(report.sizes.values()) > 0
    users = {u["external_id"]: u for u in sandbox.users() if u.get("external_id")}
    flagged = {
        k
        for k, u in users.items()
        if set(u.get("custom_attributes", {})) & {"AIQ_known_a", "AIQ_known_b"}
    }
    assert len(flagged) == report.added
    assert all(k.startswith("C") for k in flagged)  # CRM ids, not Headwater's person ids
