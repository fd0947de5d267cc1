"""The batch-at-a-time object builder against the row-at-a-time path it replaces.

Both paths run over the same diff of awkward values (nulls, unicode, extreme dates,
NaN and infinities, booleans, bad emails and phones, strings over Braze's limit, long
identifiers): the objects sent, the row errors (row, field, message) and the data points
must be the same. The row path is the old code: times formatted in Python, every row
checked by Braze's full object rules.
"""

from __future__ import annotations

import csv
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from headwater.braze.timeparse import format_braze_time
from headwater.config import load_project
from headwater.models.model import materialize_model
from headwater.syncs import engine as sync_engine
from headwater.syncs import objects
from headwater.syncs.diff import compute_diff
from headwater.syncs.engine import SyncReport, _Run
from headwater.syncs.objects import time_sql
from headwater.syncs.snapshot import commit_accepted

FIELDS = ["id", "email", "phone", "name", "score", "vip", "points", "seen", "note"]
ROWS = [
    ["C1", "ann@example.com", "+14155552671", "Ann", "1.5", "true", "10", "2024-05-02T10:00:00Z", "x"],
    ["C2", "", "", "", "", "", "", "", ""],
    ["C3", "zoë@exämple.com", "+44 20 7946 0958", "Zoë 🚀 名前", "0.1", "false", "-3",
     "2024-02-29T12:34:56.789123+05:30", "ünïcode"],
    ["C4", "not-an-email", "12", "Bad", "2", "true", "1", "1969-12-31T23:59:59.9995Z", "y"],
    ["C5", "e@example.com", "", "Old", "-0.0", "false", "0", "0001-01-01T00:00:00Z", "z"],
    ["C6", "f@example.com", "", "Late", "inf", "true", "5", "3000-12-31T23:59:59.999999Z", ""],
    ["C7", "g@example.com", "", "NaN", "NaN", "false", "9007199254740993", "", ""],
    ["C8", "h@example.com", "", "Long", "1e300", "true", "7", "2000-01-01T00:00:00Z", "n" * 300],
    ["é" * 300, "i@example.com", "", "Wide id", "3", "", "", "", ""],
    ["😀" * 250, "j@example.com", "", "Too wide", "3", "", "", "", ""],
    ["C11", "k@localhost", "+1 (415) 555-2671", "Local", "", "true", "", "", ""],
]  # fmt: skip
EDITS = {  # the second run: changed values, a row gone, a row new
    "C1": {"email": "ann2@example.com", "note": ""},
    "C2": {"name": "Now named", "seen": "1999-12-31T23:59:59.123Z", "vip": "false"},
    "C4": {"email": "fixed@example.com", "phone": ""},
    "C6": {"score": "2.5"},
    "C8": {"note": "short"},
}


def write_rows(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        writer.writerows(rows)


def edited() -> list[list[str]]:
    out = []
    for row in ROWS:
        if row[0] == "C3":
            continue
        changes = EDITS.get(row[0], {})
        out.append([changes.get(f, v) for f, v in zip(FIELDS, row, strict=True)])
    out.append(["C12", "new@example.com", "", "New", "4", "true", "4", "2010-10-10T10:10:10Z", ""])
    return out


SYNCS = {
    "external_id": "identifier: {external_id: id}",
    "alias_update": "identifier: {user_alias: {name: id, label: crm}}\n    mode: update",
    "external_id_update": "identifier: {external_id: id}\n    mode: update",
    "email": "identifier: {email: email}",
    "dob": "identifier: {external_id: id}",  # a time mapped to dob: refused row by row
}


def make_project(root: Path, identifier: str, dob: bool) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    mapping = (
        "{email: email, phone: phone, first_name: name, score: score, is_vip: vip, "
        "points: points, seen_at: seen, note: note" + (", dob: seen" if dob else "") + "}"
    )
    (root / "headwater.yml").write_text(
        textwrap.dedent(
            """
            destinations:
              braze: {url: "http://127.0.0.1:9", api_key: k}
            sources:
              people: {type: csv, path: data/people.csv}
            models:
              people:
                sql: select * from people
                primary_key: id
                columns:
                  id: {type: string, required: true}
                  email: {type: string}
                  phone: {type: string}
                  name: {type: string}
                  score: {type: float}
                  vip: {type: boolean}
                  points: {type: integer}
                  seen: {type: time}
                  note: {type: string}
            """
        )
        + f"syncs:\n  people:\n    model: people\n    destination: braze\n    {identifier}\n"
        f"    on_removed: unset\n    mapping: {mapping}\n"
    )
    return root


def sync_twice(root: Path, fast: bool, monkeypatch) -> list[tuple]:
    """Both runs' outcomes: per row, the object sent (with its cost) or the error."""
    if not fast:
        monkeypatch.setattr(objects.AttributeBuilder, "_flat", lambda self, types: False)
        monkeypatch.setattr(sync_engine, "time_columns", lambda sync, types: set())
    write_rows(root / "data/people.csv", ROWS)
    outcomes = []
    for rows in (ROWS, edited()):
        write_rows(root / "data/people.csv", rows)
        project = load_project(root)
        model = materialize_model(project, "people")
        engine = model.engine
        sync = project.syncs["people"]
        diff = compute_diff(engine, "people", model.table, model.primary_key, sync.columns)
        report = SyncReport(sync="people", run_id=None, status="running")
        run = _Run(project, "people", sync, engine, None, None, report, None)
        items = list(run.items(diff))
        outcomes.append(
            (
                sorted((str(i.ref), i.kind, repr(i.payload), run.costs[i.ref]) for i in items),
                sorted((str(e.row), e.field, str(e)) for e in report.errors),
                sorted(str(k) for k, _ in run.deletes),
            )
        )
        commit_accepted(engine, "people", [i.ref for i in items])
        engine.close()
    return outcomes


@pytest.mark.parametrize("variant", sorted(SYNCS))
def test_objects_built_a_batch_at_a_time_match_the_row_path(tmp_path, monkeypatch, variant):
    dob = variant == "dob"
    fast = sync_twice(make_project(tmp_path / "fast", SYNCS[variant], dob), True, monkeypatch)
    with monkeypatch.context() as patch:
        slow = sync_twice(make_project(tmp_path / "slow", SYNCS[variant], dob), False, patch)
    assert fast == slow
    first, second = fast
    assert first[0] and first[1]  # objects sent and rows refused, both compared
    assert (second[0] or dob) and second[1]


def test_the_fast_path_is_taken_for_flat_mappings(tmp_path, monkeypatch):
    """Guards the parity test above: it must compare two different paths."""
    rows = []
    original = sync_engine._plan_row

    def spy(sync, row, now):
        rows.append(row["__key"])
        return original(sync, row, now)

    monkeypatch.setattr(sync_engine, "_plan_row", spy)
    sync_twice(make_project(tmp_path, SYNCS["external_id"], False), True, monkeypatch)
    # Only the rows the fast path cannot vouch for take the row path.
    assert 0 < len(rows) < len(ROWS)


@pytest.mark.parametrize("dialect", ["duckdb", "postgres"])
def test_times_formatted_by_the_engine_match_format_braze_time(dialect, request):
    values = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999500, tzinfo=UTC),
        datetime(2024, 2, 29, 7, 4, 56, 789123, tzinfo=UTC),
        datetime(3000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    if dialect == "duckdb":
        import duckdb

        conn = duckdb.connect()
        conn.execute("SET TimeZone = 'America/New_York'")  # the session zone must not matter
        got = [
            conn.execute(f"SELECT {time_sql('duckdb', 'CAST($1 AS TIMESTAMPTZ)')}", [v]).fetchone()[
                0
            ]
            for v in values
        ]
    else:
        import psycopg

        with psycopg.connect(request.getfixturevalue("pg_url").replace("+psycopg", "")) as conn:
            conn.execute("SET TimeZone = 'Asia/Kolkata'")
            got = [
                conn.execute(f"SELECT {time_sql('postgres', '%s::timestamptz')}", [v]).fetchone()[0]
                for v in values
            ]
    assert got == [format_braze_time(v) for v in values]
