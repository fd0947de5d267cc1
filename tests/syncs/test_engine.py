"""The sync engine end to end: files -> DuckDB -> diff -> the sandbox on a real socket."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest

from headwater.config import load_project
from headwater.sandbox.testing import run_sandbox
from headwater.state import runs
from headwater.state.db import open_state
from headwater.syncs.engine import run_sync

FIELDS = ["customer_id", "email", "first_name", "points", "tags"]


def write_contacts(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def contact(i: int, **changes) -> dict:
    row = {
        "customer_id": f"C{i:04d}",
        "email": f"user{i}@example.com",
        "first_name": f"Name{i}",
        "points": str(i * 10),
        "tags": "a;b" if i % 2 else "",
    }
    return row | changes


def make_project(
    root: Path,
    url: str,
    key: str,
    *,
    on_removed: str = "keep",
    extra: str = "",
    max_attempts: int = 8,
) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "headwater.yml").write_text(
        textwrap.dedent(
            f"""
            destinations:
              braze: {{url: {url}, api_key: {key}, max_concurrency: 4, retry_base_seconds: 0.05, max_attempts: {max_attempts}}}
            sources:
              crm: {{type: csv, path: data/contacts.csv}}
            models:
              contacts:
                sql: select * from crm
                primary_key: customer_id
                columns:
                  customer_id: {{type: string, required: true}}
                  email: {{type: string}}
                  first_name: {{type: string}}
                  points: {{type: integer}}
                  tags: {{type: array, split: ";"}}
            syncs:
              contacts:
                model: contacts
                destination: braze
                identifier: {{external_id: customer_id}}
                mapping: {{email: email, first_name: first_name, loyalty_points: points, tags: tags}}
                on_removed: {on_removed}
            """
        )
        + textwrap.indent(textwrap.dedent(extra), "  ")
    )
    return root


def expected_state(row: dict) -> dict:
    attrs = {"loyalty_points": int(row["points"])} if row["points"] else {}
    if row["tags"]:
        attrs["tags"] = row["tags"].split(";")
    return {"email": row["email"], "first_name": row["first_name"], "custom_attributes": attrs}


def assert_sandbox_matches(sandbox, rows: list[dict]) -> None:
    users = {u["external_id"]: u for u in sandbox.users() if u.get("external_id")}
    assert set(users) == {r["customer_id"] for r in rows}
    for row in rows:
        user = users[row["customer_id"]]
        want = expected_state(row)
        assert user.get("email") == want["email"], row["customer_id"]
        assert user.get("first_name") == want["first_name"], row["customer_id"]
        assert user["custom_attributes"] == want["custom_attributes"], row["customer_id"]


@pytest.fixture
def sandbox():
    with run_sandbox() as running:
        yield running


def test_second_run_sends_only_the_changed_attributes(tmp_path, sandbox):
    rows = [contact(i) for i in range(200)]
    root = make_project(tmp_path, sandbox.url, sandbox.key)
    write_contacts(root / "data/contacts.csv", rows)
    first = run_sync(load_project(root), "contacts")
    assert (first.status, first.added, first.sent, first.rejected) == ("succeeded", 200, 200, 0)
    assert_sandbox_matches(sandbox, rows)
    spent_first = sandbox.counters()["data_points"]

    rows[3] = contact(3, points="999")
    rows[7] = contact(7, first_name="Renamed", points="")
    rows.append(contact(500))
    write_contacts(root / "data/contacts.csv", rows)
    second = run_sync(load_project(root), "contacts")
    assert (second.added, second.changed, second.unchanged, second.sent) == (1, 2, 198, 3)
    assert_sandbox_matches(sandbox, rows)
    new_user_points = 4 if rows[-1]["tags"] else 3
    # 1 changed attribute, 2 changed (one to null), and the new user's fields
    assert sandbox.counters()["data_points"] - spent_first == 1 + 2 + new_user_points
    third = run_sync(load_project(root), "contacts")
    assert (third.sent, third.requests, third.unchanged) == (0, 0, 201)
    # Each run records what the diff saved: a full resend's cost less what was spent.
    state = open_state(load_project(root).state_url)
    saved = {r.id: r.counts["data_points_saved"] for r in runs.list_runs(state, sync="contacts")}
    assert saved[second.run_id] == second.full_data_points - second.data_points > 0
    assert saved[third.run_id] == third.full_data_points and third.data_points == 0


def test_bad_rows_are_reported_by_row_and_field_and_the_rest_delivered(tmp_path, sandbox):
    rows = [contact(i) for i in range(20)]
    rows[4] = contact(4, email="not-an-email")
    rows[9] = contact(9, points="lots")
    root = make_project(tmp_path, sandbox.url, sandbox.key)
    write_contacts(root / "data/contacts.csv", rows)
    report = run_sync(load_project(root), "contacts")
    assert report.status == "partial"
    assert (report.sent, report.rejected) == (18, 2)
    problems = {(str(e.row), e.field) for e in report.errors}
    assert ("C0004", "email") in problems
    assert ("C0009", "points") in problems
    state = open_state(load_project(root).state_url)
    stored = runs.row_errors(state, report.run_id)
    assert {e.row_key for e in stored} == {"C0004", "C0009"}
    # Each with the value that was wrong, to read beside the reason.
    assert {e.row_key: e.value for e in stored} == {"C0004": "not-an-email", "C0009": "lots"}
    assert len(sandbox.users()) == 18


def test_a_secret_fields_bad_value_is_never_stored_nor_quoted(tmp_path, sandbox):
    """A refused value of a field whose name looks secret: neither the stored value nor
    the reason (which quotes what did not convert) keeps it."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data/keys.csv").write_text("customer_id,api_token\nC1,12\nC2,tok-hunter2\n")
    (tmp_path / "headwater.yml").write_text(
        textwrap.dedent(
            f"""
            destinations:
              braze: {{url: {sandbox.url}, api_key: {sandbox.key}}}
            sources:
              keys: {{type: csv, path: data/keys.csv}}
            models:
              keys:
                sql: select * from keys
                primary_key: customer_id
                columns:
                  customer_id: {{type: string, required: true}}
                  api_token: {{type: integer, required: true}}
            syncs:
              keys:
                model: keys
                destination: braze
                identifier: {{external_id: customer_id}}
                mapping: {{api_token: api_token}}
            """
        )
    )
    report = run_sync(load_project(tmp_path), "keys")
    assert (report.sent, report.rejected) == (1, 1)
    stored = runs.row_errors(open_state(load_project(tmp_path).state_url), report.run_id)
    assert [(e.row_key, e.field) for e in stored] == [("C2", "api_token")]
    assert "hunter2" not in repr(stored) and "hunter2" not in str(report.errors)
    assert stored[0].value == "[redacted]" and "[redacted]" in stored[0].reason


def test_rows_braze_failed_are_sent_again_next_run(tmp_path, sandbox):
    rows = [contact(i) for i in range(30)]
    root = make_project(tmp_path, sandbox.url, sandbox.key)
    write_contacts(root / "data/contacts.csv", rows)
    sandbox.set_faults(rate_5xx=1.0)
    failed = run_sync(load_project(root), "contacts")
    assert (failed.sent, failed.failed, failed.status) == (0, 30, "partial")
    sandbox.set_faults(rate_5xx=0.0)
    retried = run_sync(load_project(root), "contacts")
    assert (retried.added, retried.sent, retried.failed) == (30, 30, 0)
    assert_sandbox_matches(sandbox, rows)


def test_sync_completes_exactly_under_429_storms_errors_and_latency(tmp_path, sandbox):
    rows = [contact(i) for i in range(600)]
    # 40% of requests fail: with 8 attempts a batch gives up once in ~1,500 (and is sent
    # again by the next run, by design), so this test flaked about once in 100 runs; with
    # 16 it is once in ~2 million batches and the run must still come out exact.
    root = make_project(tmp_path, sandbox.url, sandbox.key, max_attempts=16)
    write_contacts(root / "data/contacts.csv", rows)
    sandbox.set_faults(rate_429=0.3, rate_5xx=0.1, latency_ms=20)
    first = run_sync(load_project(root), "contacts")
    rows = [contact(i, points=str(i + 1)) if i % 3 == 0 else r for i, r in enumerate(rows)]
    write_contacts(root / "data/contacts.csv", rows)
    second = run_sync(load_project(root), "contacts")
    sandbox.set_faults(rate_429=0, rate_5xx=0, latency_ms=0)
    assert first.failed == second.failed == 0
    assert second.changed == 200
    assert_sandbox_matches(sandbox, rows)


@pytest.mark.parametrize("policy", ["unset", "delete", "keep"])
def test_rows_that_leave_the_model_follow_the_removal_policy(tmp_path, sandbox, policy):
    rows = [contact(i) for i in range(10)]
    root = make_project(tmp_path, sandbox.url, sandbox.key, on_removed=policy)
    write_contacts(root / "data/contacts.csv", rows)
    run_sync(load_project(root), "contacts")
    write_contacts(root / "data/contacts.csv", rows[:8])
    report = run_sync(load_project(root), "contacts")
    assert report.removed == 2
    gone = sandbox.user("C0009")
    if policy == "delete":
        assert gone is None and len(sandbox.users()) == 8
    elif policy == "unset":
        assert gone["custom_attributes"] == {} and "email" not in gone and "first_name" not in gone
    else:
        assert gone["first_name"] == "Name9"
    assert run_sync(load_project(root), "contacts").removed == 0


def test_full_resends_every_row_and_dry_run_sends_nothing(tmp_path, sandbox):
    rows = [contact(i) for i in range(12)]
    root = make_project(tmp_path, sandbox.url, sandbox.key)
    write_contacts(root / "data/contacts.csv", rows)
    dry = run_sync(load_project(root), "contacts", dry_run=True)
    assert dry.run_id is None and dry.added == 12 and len(dry.preview) == 5
    assert sandbox.users() == []
    run_sync(load_project(root), "contacts")
    full = run_sync(load_project(root), "contacts", full=True)
    assert full.sent == 12


def test_events_are_sent_once_even_across_reruns(tmp_path, sandbox):
    root = make_project(
        tmp_path,
        sandbox.url,
        sandbox.key,
        extra=textwrap.dedent(
            """
              rewards:
                model: contacts
                destination: braze
                type: events
                identifier: {external_id: customer_id}
                event: {name: reward_earned, properties: {points: points}}
            """
        ),
    )
    rows = [contact(i) for i in range(5)]
    write_contacts(root / "data/contacts.csv", rows)
    run_sync(load_project(root), "rewards")
    rows[0] = contact(0, points="5000")
    write_contacts(root / "data/contacts.csv", rows)
    again = run_sync(load_project(root), "rewards")
    assert (again.changed, again.sent) == (1, 0)
    assert sandbox.counters()["events"] == 5


def _customers_in_postgresql(tmp_path, sandbox, pg_url, rows: int, sync_extra: str = "") -> None:
    """A table of ``rows`` customers in PostgreSQL and a project syncing a model over it."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id text primary key, email text, points int)")
        conn.execute(
            "INSERT INTO customers SELECT 'P' || g, 'p' || g || '@example.com', g "
            f"FROM generate_series(1, {int(rows)}) g"
        )
    (tmp_path / "headwater.yml").write_text(
        textwrap.dedent(
            f"""
            destinations:
              braze: {{url: {sandbox.url}, api_key: {sandbox.key}}}
            sources:
              app_db: {{type: sql, url: "{pg_url}", table: customers}}
            models:
              customers:
                sql: select id, email, points from app_db
                primary_key: id
                columns:
                  id: {{type: string, required: true}}
                  email: {{type: string}}
                  points: {{type: integer}}
            syncs:
              customers:
                model: customers
                destination: braze
                identifier: {{external_id: id}}
                mapping: {{email: email, points: points}}
            """
        )
        + sync_extra
    )


def test_a_model_in_postgresql_is_diffed_there_and_synced(tmp_path, sandbox, pg_url):
    import psycopg

    _customers_in_postgresql(tmp_path, sandbox, pg_url, 50)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE customers SET email = NULL WHERE id = 'P50'")
    first = run_sync(load_project(tmp_path), "customers")
    assert (first.status, first.sent) == ("succeeded", 50)
    assert first.full_data_points == 99  # 49 emails and 50 points
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE customers SET points = points + 1 WHERE id IN ('P1', 'P2')")
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'hw_%'"
        ).fetchall()
    # The snapshot lives in the user's database, beside the data; the model (its key kept
    # unique by the table) is read where it is, not copied into a table of its own.
    assert sorted(t for (t,) in tables) == ["hw_diff_customers", "hw_snapshot_customers"]
    second = run_sync(load_project(tmp_path), "customers")
    assert (second.changed, second.sent, second.unchanged) == (2, 2, 48)
    assert second.full_data_points == 99
    assert sandbox.user("P2")["custom_attributes"]["points"] == 3


@pytest.mark.parametrize("policy", ["unset", "delete"])
def test_rows_that_leave_a_postgresql_model_are_found_by_their_identifier_in_the_snapshot(
    tmp_path, sandbox, pg_url, policy
):
    """A removed row's identifier comes from the snapshot (the model no longer has it),
    looked up by key for just those rows; a changed row keeps its own."""
    import psycopg

    _customers_in_postgresql(tmp_path, sandbox, pg_url, 6, f"    on_removed: {policy}\n")
    assert run_sync(load_project(tmp_path), "customers").sent == 6
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM customers WHERE id IN ('P5', 'P6')")
        conn.execute("UPDATE customers SET points = 10 WHERE id = 'P1'")
    second = run_sync(load_project(tmp_path), "customers")
    assert (second.removed, second.changed, second.sent, second.failed) == (2, 1, 3, 0)
    assert sandbox.user("P1")["custom_attributes"]["points"] == 10
    if policy == "delete":
        assert sandbox.user("P5") is None and sandbox.user("P6") is None
        assert len(sandbox.users()) == 4
    else:
        assert "email" not in sandbox.user("P5") and sandbox.user("P6")["custom_attributes"] == {}
    third = run_sync(load_project(tmp_path), "customers")
    assert (third.removed, third.changed, third.sent) == (0, 0, 0)


def test_a_second_run_of_a_sync_that_is_still_running_is_refused(tmp_path, sandbox):
    root = make_project(tmp_path, sandbox.url, sandbox.key)
    write_contacts(root / "data/contacts.csv", [contact(1)])
    state = open_state(load_project(root).state_url)
    live = runs.start_run(state, "contacts")  # this very process: alive
    report = run_sync(load_project(root), "contacts")
    assert report.status == "failed" and f"run {live}" in report.error
    assert sandbox.users() == []
    runs.finish_run(state, live)
    assert run_sync(load_project(root), "contacts").status == "succeeded"


def test_a_running_sync_is_refused_even_behind_many_skipped_slots(tmp_path, sandbox):
    root = make_project(tmp_path, sandbox.url, sandbox.key)
    write_contacts(root / "data/contacts.csv", [contact(1)])
    state = open_state(load_project(root).state_url)
    live = runs.start_run(state, "contacts")
    for _ in range(12):  # a schedule's slots that came due while it ran
        runs.record_skipped(state, "contacts", f"skipped: run {live} was still running")
    report = run_sync(load_project(root), "contacts")
    assert report.status == "failed" and f"already running (run {live}," in report.error
    assert sandbox.users() == []
