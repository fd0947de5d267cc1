"""An identity model is synced like any model (its golden records, by person_id), and
``headwater resolve`` prints where its tables are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.config import load_project
from headwater.sandbox.testing import run_sandbox
from headwater.syncs.engine import run_sync

CRM = "id,email,first_name\n1,ann@example.com,Ann\n2,bob@example.com,Bob\n"
SHOP = "order_id,email,phone,first_name\no1,ANN@example.com,,Annie\no2,,+33 6 12 34 56 78,Zoe\n"


def write_project(root: Path, url: str = "http://127.0.0.1:9", key: str = "k") -> Path:
    (root / "crm.csv").write_text(CRM)
    (root / "shop.csv").write_text(SHOP)
    (root / "headwater.yml").write_text(
        f"""
destinations:
  braze: {{url: {url}, api_key: {key}, retry_base_seconds: 0.05}}
sources:
  crm_contacts: {{type: csv, path: crm.csv}}
  shop_orders: {{type: csv, path: shop.csv}}
models:
  people:
    identity:
      keys: {{email: {{type: email}}, phone: {{type: phone}}}}
      sources:
        crm: {{sql: select * from crm_contacts, record_id: id, keys: {{email: email}}, priority: 1}}
        shop: {{sql: select * from shop_orders, record_id: order_id, keys: {{email: email, phone: phone}}, priority: 2}}
    columns:
      first_name: {{type: string}}
      email: {{type: string}}
      phone: {{type: string}}
syncs:
  people_to_braze:
    model: people
    destination: braze
    identifier: {{external_id: person_id}}
    mapping: {{first_name: first_name, email: email, phone: phone}}
"""
    )
    return root


@pytest.fixture
def sandbox():
    with run_sandbox() as running:
        yield running


def test_a_sync_over_an_identity_model_sends_one_user_per_person(tmp_path, sandbox):
    root = write_project(tmp_path, sandbox.url, sandbox.key)
    report = run_sync(load_project(root), "people_to_braze")
    assert (report.status, report.added, report.sent) == ("succeeded", 3, 3)
    users = {u["external_id"]: u for u in sandbox.users()}
    assert {u.get("first_name") for u in users.values()} == {"Ann", "Bob", "Zoe"}
    zoe = next(u for u in users.values() if u.get("first_name") == "Zoe")
    assert zoe["phone"] == "+33612345678"
    again = run_sync(load_project(root), "people_to_braze")
    assert (again.added, again.changed, again.sent) == (0, 0, 0)  # stable person ids


def test_resolve_prints_counts_and_tables_and_json(tmp_path, monkeypatch):
    root = write_project(tmp_path)
    runner = CliRunner()
    shown = runner.invoke(app, ["resolve", "people", "-p", str(root)])
    assert shown.exit_code == 0, shown.output
    assert "people_golden" in shown.output and "succeeded" in shown.output
    as_json = runner.invoke(app, ["resolve", "people", "-p", str(root), "--json"])
    payload = json.loads(as_json.stdout)
    assert (payload["persons"], payload["new_persons"], payload["status"]) == (3, 0, "succeeded")
    assert (payload["mode"], payload["changed"], payload["braze_merges"]["sent"]) == (
        "incremental",
        0,
        0,
    )
    full = runner.invoke(app, ["resolve", "people", "-p", str(root), "--full", "--json"])
    assert json.loads(full.stdout)["mode"] == "full"
    missing = runner.invoke(app, ["resolve", "nope", "-p", str(root)])
    assert missing.exit_code == 2


def test_a_dry_run_over_an_identity_model_previews_the_last_resolution_and_changes_nothing(
    tmp_path,
):
    import duckdb

    from headwater.state import runs
    from headwater.state.db import open_state

    root = write_project(tmp_path)
    project = load_project(root)
    never = run_sync(project, "people_to_braze", dry_run=True)
    assert never.status == "failed" and "headwater resolve people" in never.error
    resolved = CliRunner().invoke(app, ["resolve", "people", "-p", str(root)])
    assert resolved.exit_code == 0, resolved.output
    (root / "crm.csv").write_text(CRM + "3,cy@example.com,Cy\n")  # a new person, not resolved
    preview = run_sync(load_project(root), "people_to_braze", dry_run=True)
    assert (preview.status, preview.added, preview.sent) == ("dry run", 3, 0)  # not Cy
    state = open_state(project.state_url)
    try:
        kinds = [run.kind for run in runs.list_runs(state, limit=10)]
    finally:
        state.dispose()
    assert kinds.count("identity") == 1  # the dry run resolved nothing
    warehouse = duckdb.connect(str(project.warehouse_path), read_only=True)
    try:
        assert warehouse.execute("SELECT count(*) FROM people_golden").fetchall() == [(3,)]
    finally:
        warehouse.close()
