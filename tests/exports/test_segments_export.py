"""``headwater export segments`` end to end against the real sandbox on a socket: list,
export, wait, download, parse, land; duplicates, history across runs, failures."""

from __future__ import annotations

import json
import threading

import duckdb
import pytest
from fastapi import FastAPI, Request
from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.config import parse_project
from headwater.exports.segments import attach_segment_views, run_segments_export
from headwater.exports.segments_land import segment_dir
from headwater.sandbox.testing import run_sandbox
from headwater.state import runs
from headwater.state.db import open_state
from headwater.testing import serve_in_thread

DAY = 86_400.0


def project_text(url: str, extra: str = "") -> str:
    return f"""\
destinations:
  braze: {{url: "{url}", api_key: "${{HW_TEST_KEY}}"}}
exports:
  segments:
    destination: braze
    poll_timeout_minutes: 2
{extra}"""


@pytest.fixture
def sandbox(monkeypatch):
    with run_sandbox() as running:
        monkeypatch.setenv("HW_TEST_KEY", running.key)
        yield running


def users(n: int, tier=lambda i: "gold" if i % 2 else "silver", **extra):
    return [{"external_id": f"u{i}", "tier": tier(i), **extra} for i in range(n)]


def open_views(project) -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    attach_segment_views(conn, project.landing_path)
    return conn


def rows(conn, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


def test_segments_land_as_tables_with_a_segments_table_and_history(sandbox, tmp_path):
    sandbox.seed(attributes=users(12_001))
    sandbox.define_segment("Gold tier", {"attribute": "tier", "equals": "gold"})
    sandbox.define_segment("Everyone")
    project = parse_project(project_text(sandbox.url), root=tmp_path)

    report = run_segments_export(project)

    assert report.status == "succeeded", report.error
    assert {s.name: s.members for s in report.segments} == {"Gold tier": 6000, "Everyone": 12_001}
    conn = open_views(project)
    assert rows(conn, "select count(*), count(distinct braze_id) from segment_gold_tier") == [
        (6000, 6000)
    ]
    assert rows(conn, "select distinct tier from segment_gold_tier") == [("gold",)]
    assert sorted(rows(conn, "select name, members from segments")) == [
        ("Everyone", 12_001), ("Gold tier", 6000),
    ]  # fmt: skip
    assert rows(conn, "select count(*) from segment_membership_history") == [(18_001,)]
    assert rows(conn, "select count(*) from segment_members") == [(18_001,)]
    state = open_state(project.state_url)
    record = runs.list_runs(state)[0]
    assert (record.sync, record.kind, record.status) == ("segments", "export", "succeeded")
    assert record.counts["added"] == 18_001
    state.dispose()


def test_duplicates_in_braze_files_land_once(sandbox, tmp_path):
    sandbox.seed(attributes=users(3000))
    sandbox.define_segment("Everyone")
    sandbox.set_faults(export_duplicate_share=0.5)
    project = parse_project(project_text(sandbox.url), root=tmp_path)

    first = run_segments_export(project)
    second = run_segments_export(project)

    for report in (first, second):
        assert report.status == "succeeded", report.error
        (segment,) = report.segments
        assert segment.members == 3000 and segment.duplicates > 500
    assert (second.segments[0].entered, second.segments[0].stayed) == (0, 3000)
    conn = open_views(project)
    assert rows(conn, "select count(*), count(distinct braze_id) from segment_everyone") == [
        (3000, 3000)
    ]
    assert rows(conn, "select count(*) from segment_membership_history") == [(3000,)]


def test_membership_history_keeps_first_and_last_seen_across_runs(sandbox, tmp_path, clock):
    sandbox.seed(attributes=[{"external_id": i, "tier": "gold"} for i in ("a", "b")])
    sandbox.define_segment("Gold", {"attribute": "tier", "equals": "gold"})
    project = parse_project(project_text(sandbox.url), root=tmp_path)
    first_at = clock()
    assert run_segments_export(project, clock=clock).status == "succeeded"

    sandbox.seed(attributes=[{"external_id": "b", "tier": "silver"},
                             {"external_id": "c", "tier": "gold"}])  # fmt: skip
    clock.advance(DAY)
    report = run_segments_export(project, clock=clock)

    (segment,) = report.segments
    assert (segment.entered, segment.exited, segment.stayed) == (1, 1, 1)
    conn = open_views(project)
    history = rows(
        conn,
        "select external_id, epoch(first_seen), epoch(last_seen) "
        "from segment_membership_history order by external_id",
    )
    assert history == [
        ("a", first_at, first_at + DAY),
        ("b", first_at, first_at),
        ("c", first_at + DAY, first_at + DAY),
    ]
    assert rows(conn, "select external_id from segment_gold order by 1") == [("a",), ("c",)]
    assert rows(conn, "select epoch(exported_at), entered, exited from segments") == [
        (first_at + DAY, 1, 1)
    ]


def test_a_damaged_download_leaves_the_previous_tables_in_place(sandbox, tmp_path):
    sandbox.seed(attributes=users(6000))
    sandbox.define_segment("Everyone")
    project = parse_project(project_text(sandbox.url), root=tmp_path)
    assert run_segments_export(project).status == "succeeded"
    landed = sorted(p for p in project.landing_path.rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in landed}

    sandbox.seed(attributes=[{"external_id": "new", "tier": "gold"}])
    sandbox.set_faults(export_truncated_share=1.0)
    report = run_segments_export(project)

    assert report.status == "failed"
    assert "damaged" in report.error and "Everyone" in report.error
    assert sorted(p for p in project.landing_path.rglob("*") if p.is_file()) == landed
    assert {p: p.read_bytes() for p in landed} == before  # nothing replaced, no temp left
    state = open_state(project.state_url)
    assert runs.list_runs(state)[0].status == "failed"
    state.dispose()


def test_nested_attributes_land_as_json_text(sandbox, tmp_path):
    sandbox.seed(attributes=users(10, odd={"nested": {"deep": [1, 2]}}))
    sandbox.define_segment("Everyone")
    project = parse_project(project_text(sandbox.url), root=tmp_path)
    report = run_segments_export(project)
    assert report.status == "succeeded"
    conn = open_views(project)
    assert rows(conn, "select distinct odd from segment_everyone") == [
        ('{"nested":{"deep":[1,2]}}',)
    ]


def test_the_callback_gets_braze_s_body_with_the_link(sandbox, tmp_path):
    received: list[dict] = []
    done = threading.Event()
    hook = FastAPI()

    @hook.post("/braze-export")
    async def callback(request: Request):
        received.append(await request.json())
        done.set()
        return {}

    sandbox.seed(attributes=users(5))
    sandbox.define_segment("Everyone")
    with serve_in_thread(hook) as server:
        extra = f"    callback_url: {server.url}/braze-export\n"
        project = parse_project(project_text(sandbox.url, extra), root=tmp_path)
        report = run_segments_export(project)
        assert report.status == "succeeded"
        assert done.wait(30)
    assert received[0]["success"] is True
    assert received[0]["url"].startswith(sandbox.url + "/segment-export/")


def test_a_stopping_server_interrupts_the_run(sandbox, tmp_path):
    sandbox.seed(attributes=users(5))
    sandbox.define_segment("Everyone")
    project = parse_project(project_text(sandbox.url), root=tmp_path)
    stop = threading.Event()
    stop.set()
    report = run_segments_export(project, stop=stop)
    assert report.status == "interrupted"
    assert [s.status for s in report.segments] == ["stopped"]
    assert not segment_dir(project.landing_path, report.segments[0].segment_id).exists()


def test_fields_to_export_additions_and_removals(sandbox, tmp_path):
    sandbox.seed(attributes=[{"external_id": "a", "email": "a@x.io", "tier": "gold"}],
                 events=[{"external_id": "a", "name": "opened", "time": "2026-01-01T00:00:00Z"}])  # fmt: skip
    sandbox.define_segment("Everyone")
    extra = "    fields_to_export: {add: [custom_events], remove: [email, custom_attributes]}\n"
    project = parse_project(project_text(sandbox.url, extra), root=tmp_path)
    assert run_segments_export(project).status == "succeeded"
    conn = open_views(project)
    columns = [r[0] for r in rows(conn, "describe segment_everyone")]
    assert "custom_events" in columns and "email" not in columns and "tier" not in columns


runner = CliRunner()


def test_the_cli_exports_with_json_and_prints_views(sandbox, tmp_path):
    sandbox.seed(attributes=users(20))
    sandbox.define_segment("VIP", {"attribute": "tier", "in": ["gold"]})
    sandbox.define_segment("Other")
    (tmp_path / "headwater.yml").write_text(project_text(sandbox.url))

    result = runner.invoke(
        app, ["export", "segments", "--segment", "VIP", "--json", "-p", str(tmp_path)]
    )

    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "succeeded"
    assert [(s["name"], s["members"]) for s in payload["segments"]] == [("VIP", 10)]
    assert "segment_vip" in payload["views"]
    views = runner.invoke(app, ["export", "views", "-p", str(tmp_path)])
    assert 'CREATE OR REPLACE VIEW "segment_vip"' in views.stdout

    missing = runner.invoke(app, ["export", "segments", "-s", "Nope", "-p", str(tmp_path)])
    assert missing.exit_code == 1
    assert "no segment named 'Nope'" in missing.output


def test_the_cli_reports_config_problems_at_their_line(tmp_path):
    text = (
        project_text("http://127.0.0.1:9")
        + "    fields_to_export: {add: [shoe_size], remove: [braze_id]}\n"
    )
    (tmp_path / "headwater.yml").write_text(text)
    result = runner.invoke(
        app, ["export", "segments", "-p", str(tmp_path)], env={"HW_TEST_KEY": "k"}
    )
    assert result.exit_code == 2
    assert "'shoe_size' is not a field Braze exports" in result.output
    assert "braze_id cannot be removed" in result.output
    assert "headwater.yml:7" in result.output


def test_serve_s_scheduler_runs_the_export_as_job_segments(sandbox, tmp_path):
    from headwater.schedules.jobs import job_runner, jobs_of

    sandbox.seed(attributes=users(3))
    sandbox.define_segment("Everyone")
    extra = "    schedule: {every: 1h}\n"
    project = parse_project(project_text(sandbox.url, extra), root=tmp_path)
    assert "segments" in jobs_of(project)
    result = job_runner(project)("segments")
    assert (result.status, result.error) == ("succeeded", None)
    assert result.run_id is not None


def test_hostile_segment_ids_and_names_stay_inside_the_landing(sandbox, tmp_path):
    sandbox.seed(attributes=users(3))
    sandbox.define_segment("'; drop table x; --", id="../../escape")
    sandbox.define_segment("ü" * 300, id="a" * 200)
    project = parse_project(project_text(sandbox.url), root=tmp_path)
    report = run_segments_export(project)
    assert report.status == "succeeded", report.error
    landed = [p for p in tmp_path.rglob("members.parquet")]
    assert len(landed) == 2
    assert all(project.landing_path in p.parents for p in landed)
    conn = open_views(project)
    assert rows(conn, "select count(*) from segment_drop_table_x") == [(3,)]


def test_one_failing_segment_does_not_stop_the_others(tmp_path, monkeypatch):
    """Seed 0: of the sandbox's first two exports, exactly one is cut short (which one
    depends on which request arrives first; the test holds for either)."""
    with run_sandbox(seed=0) as sandbox:
        monkeypatch.setenv("HW_TEST_KEY", sandbox.key)
        sandbox.seed(attributes=users(100))
        sandbox.define_segment("Gold", {"attribute": "tier", "equals": "gold"})
        sandbox.define_segment("Silver", {"attribute": "tier", "equals": "silver"})
        sandbox.set_faults(export_truncated_share=0.5)
        project = parse_project(project_text(sandbox.url), root=tmp_path)
        report = run_segments_export(project)

    assert report.status == "partial"
    (failed,) = [s for s in report.segments if s.status == "failed"]
    (landed,) = [s for s in report.segments if s.status == "landed"]
    assert "damaged" in failed.error and landed.members == 50
    assert report.error.startswith("1 of 2 segments failed: " + failed.name)
    assert (
        not segment_dir(project.landing_path, failed.segment_id)
        .joinpath("members.parquet")
        .exists()
    )
    conn = open_views(project)
    assert rows(conn, "select name from segments") == [(landed.name,)]


@pytest.mark.postgres
def test_runs_are_recorded_in_a_postgresql_state(sandbox, tmp_path, pg_url):
    sandbox.seed(attributes=users(10))
    sandbox.define_segment("Everyone")
    text = f"state: {pg_url}\n" + project_text(sandbox.url)
    project = parse_project(text, root=tmp_path)
    assert run_segments_export(project).status == "succeeded"
    state = open_state(project.state_url)
    (record,) = runs.list_runs(state)
    assert (record.kind, record.status, record.counts["added"]) == ("export", "succeeded", 10)
    state.dispose()


def test_colliding_attribute_names_land_prefixed(sandbox, tmp_path):
    sandbox.seed(attributes=[{"external_id": "a", "email": "a@x.io", "segment_id": "crm-7",
                              "Email": "other@x.io", "BRAZE_ID": 5}])  # fmt: skip
    sandbox.define_segment("Everyone")
    project = parse_project(project_text(sandbox.url), root=tmp_path)
    assert run_segments_export(project).status == "succeeded"
    conn = open_views(project)
    got = rows(conn, 'select email, "_braze_Email", _braze_segment_id, "_braze_BRAZE_ID", '
                     "segment_id = (select segment_id from segments) from segment_everyone")  # fmt: skip
    assert got == [("a@x.io", "other@x.io", "crm-7", 5, True)]


def test_a_wrong_key_fails_the_run_without_showing_the_key(sandbox, tmp_path, monkeypatch):
    monkeypatch.setenv("HW_TEST_KEY", "wrong-key-0123456789-secret")
    project = parse_project(project_text(sandbox.url), root=tmp_path)
    report = run_segments_export(project)
    assert report.status == "failed"
    assert "Invalid API key" in report.error and "0123456789-secret" not in report.error
