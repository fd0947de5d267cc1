"""``headwater schedules``, ``pause`` and ``resume`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from headwater.cli.app import app

PROJECT = """\
state: sqlite:///.headwater/state.db
destinations:
  braze: {url: "http://127.0.0.1:9", api_key: k}
sources:
  crm: {type: csv, path: data/contacts.csv}
models:
  contacts:
    sql: select * from crm
    primary_key: id
    columns: {id: {type: string}}
syncs:
  contacts:
    model: contacts
    destination: braze
    identifier: {external_id: id}
    mapping: {a: id}
    schedule: {cron: "0 2 * * *", timezone: Europe/Paris}
  orders:
    model: contacts
    destination: braze
    identifier: {external_id: id}
    mapping: {b: id}
    schedule: {after: contacts}
  manual:
    model: contacts
    destination: braze
    identifier: {external_id: id}
    mapping: {c: id}
"""

runner = CliRunner()


def schedules(root: Path, *args: str):
    return runner.invoke(app, ["schedules", *args, "--project", str(root)])


def test_schedules_lists_scheduled_jobs_and_pause_resume_hold(tmp_path: Path):
    (tmp_path / "headwater.yml").write_text(PROJECT)
    listed = json.loads(schedules(tmp_path, "--json").output)
    assert [(e["job"], e["schedule"], e["status"]) for e in listed] == [
        ("contacts", "cron 0 2 * * * Europe/Paris", "scheduled"),
        ("orders", "after contacts", "scheduled"),
    ]
    assert len(listed[0]["next_fire_times"]) == 5 and listed[1]["next_fire_times"] == []
    assert listed[0]["last_run"] is None

    paused = schedules(tmp_path, "pause", "contacts")
    assert paused.exit_code == 0 and "Paused contacts" in paused.output
    table = schedules(tmp_path, "--upcoming")
    assert "paused" in table.output and "when contacts succeeds" in table.output
    assert json.loads(schedules(tmp_path, "--json").output)[0]["paused"] is True

    resumed = schedules(tmp_path, "resume", "contacts", "--json")
    assert json.loads(resumed.output) == {"job": "contacts", "paused": False}
    assert json.loads(schedules(tmp_path, "--json").output)[0]["status"] == "scheduled"


def test_pausing_a_job_that_is_not_scheduled_names_the_scheduled_ones(tmp_path: Path):
    (tmp_path / "headwater.yml").write_text(PROJECT)
    result = schedules(tmp_path, "pause", "manual")
    assert result.exit_code == 2
    assert "no scheduled job named 'manual' (scheduled: contacts, orders)" in result.output
