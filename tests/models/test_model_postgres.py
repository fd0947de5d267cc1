"""Models over a PostgreSQL source run inside PostgreSQL: the rows never leave it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest

from headwater.config import parse_project
from headwater.engines import SqlAlchemyEngine
from headwater.errors import FatalError
from headwater.models import materialize_model, model_database
from headwater.syncs.diff import compute_diff

ROWS = [
    ("C1", "ada@example.com", "10", "true", "2024-01-01", "vip;new", '{"plan": "pro"}', 10),
    ("C2", "not-an-email", "abc", "yes", "2024-02-30", "", "[1]", 20),
    (None, "cy@example.com", "5", "no", "2024-01-03", None, None, 30),
    ("C4", "di%example.com", " 4 ", "1", "2024-01-05 10:00+02", None, "nope", 40),
    ("C5", "ed@example.com", "4", "0", "2024-01-05", "a; b", "{}", 50),
    ("C5", "ee@example.com", "4", "0", "2024-01-05", "a; b", "{}", 60),
    ("C7", "fa@example.com", "1e3", "f", "2024-01-07T08:00:00Z", "x", None, 70),
]


def seed(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "CREATE TABLE people (customer_id text, email text, points text, vip text, "
            "signed text, tags text, meta text, spend integer)"
        )
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO people VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", ROWS)


COLUMNS = """
    primary_key: customer_id
    columns:
      customer_id: {}
      email:  {pattern: '[^@\\s]+@[^@\\s]+\\.[^@\\s]+'}
      points: {type: integer}
      vip:    {type: boolean}
      signed: {type: time}
      tags:   {type: array, split: ";"}
      meta:   {type: object}
      spend:  {type: float}
"""


def project_for(tmp_path: Path, pg_url: str, models: str):
    return parse_project(
        f"sources:\n  app: {{type: sql, url: '{pg_url}'}}\n"
        f"  people: {{type: sql, url: '{pg_url}', table: people}}\n"
        f"models:\n{models}",
        root=tmp_path,
    )


def test_a_model_over_postgres_runs_there_and_rejects_bad_rows_by_key_and_field(
    tmp_path: Path, pg_url: str
) -> None:
    seed(pg_url)
    project = project_for(
        tmp_path,
        pg_url,
        "  contacts:\n    source: app\n"
        "    sql: select * from people where email like '%' or email is null\n" + COLUMNS,
    )

    result = materialize_model(project, "contacts")
    try:
        assert result.engine is not None and result.engine.dialect == "postgres"
        problems = {(r.row_key, r.field): r.reason for r in result.rejected}
        assert problems == {
            ("C2", "email"): "does not match the pattern: 'not-an-email'",
            ("C2", "points"): "expected integer, got 'abc'",
            ("C2", "signed"): "expected time, got '2024-02-30'",
            ("C2", "meta"): "expected object, got '[1]'",
            ("row 3", "customer_id"): "required but missing",
            ("C4", "email"): "does not match the pattern: 'di%example.com'",
            ("C4", "meta"): "expected object, got 'nope'",
            ("C5", "customer_id"): "duplicate primary key: 2 rows have it",
            ("C7", "points"): "expected integer, got '1e3'",
        }
        values = {(r.row_key, r.field): r.value for r in result.rejected}
        assert values[("C2", "email")] == "not-an-email" and values[("C2", "points")] == "abc"
        assert values[("row 3", "customer_id")] is None  # missing: no value to show
        assert result.rejected_count == 6
        assert result.row_count == 1
    finally:
        result.engine.close()

    # The typed table is in PostgreSQL itself, for the diff to run there.
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(f"SELECT * FROM {result.table}").fetchall()
    assert rows == [
        (
            "C1",
            "ada@example.com",
            10,
            True,
            dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            ["vip", "new"],
            {"plan": "pro"},
            10.0,
        )
    ]


def test_sql_sources_sharing_one_database_make_the_model_run_in_that_database(
    tmp_path: Path, pg_url: str
) -> None:
    seed(pg_url)
    project = project_for(
        tmp_path,
        pg_url,
        "  contacts:\n    sql: select p.* from people p where p.customer_id <> 'C2'\n" + COLUMNS,
    )
    assert model_database(project, "contacts") == "people"

    result = materialize_model(project, "contacts")
    try:
        assert result.engine is not None and result.engine.dialect == "postgres"
        assert "C2" not in {r.row_key for r in result.rejected}
        assert result.row_count == 1
    finally:
        result.engine.close()


def test_a_file_model_cannot_be_materialized_in_postgres(tmp_path: Path, pg_url: str) -> None:
    (tmp_path / "c.csv").write_text("id\nA\n")
    project = parse_project(
        "sources: {crm: {type: csv, path: c.csv}}\n"
        "models: {c: {sql: select * from crm, primary_key: id, columns: {id: {}}}}\n",
        root=tmp_path,
    )
    with SqlAlchemyEngine(pg_url) as engine, pytest.raises(FatalError, match="runs in the DuckDB"):
        materialize_model(project, "c", engine)


def test_an_unreachable_database_is_a_fatal_error_naming_the_source(tmp_path: Path) -> None:
    project = project_for(
        tmp_path,
        "postgresql://postgres:pw-secret@127.0.0.1:1/none",
        "  contacts:\n    source: app\n    sql: select * from people\n" + COLUMNS,
    )

    with pytest.raises(FatalError, match="source 'app': cannot reach database") as caught:
        materialize_model(project, "contacts")
    assert "pw-secret" not in str(caught.value)


def test_shared_keys_too_long_to_index_are_still_found_and_the_model_reruns(
    tmp_path: Path, pg_url: str
) -> None:
    """Shared keys are found by a unique index; a key too long for one (PostgreSQL caps
    index rows near 2.7 kB) is counted another way, never let through."""
    long_key = "K" * 5000
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE wide (id text, points integer)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO wide VALUES (%s, %s)",
                [(long_key, 1), (long_key, 2), ("K2", 3), ("K3", None)],
            )
    project = project_for(
        tmp_path,
        pg_url,
        "  wide:\n    source: app\n    sql: select * from wide\n"
        "    primary_key: id\n    columns:\n      id: {}\n      points: {type: integer}\n",
    )
    for _ in range(2):  # the second run replaces the first's table (and its index)
        result = materialize_model(project, "wide")
        assert result.engine is not None
        try:
            assert [(r.field, r.reason) for r in result.rejected] == [
                ("id", "duplicate primary key: 2 rows have it")
            ] * 2
            assert (result.row_count, result.rejected_count) == (2, 2)
            rows = result.engine.fetch_all(f'SELECT * FROM "{result.table}" ORDER BY id')
            assert rows == [("K2", 3), ("K3", None)]
        finally:
            result.engine.close()


UNIQUE_COLUMNS = COLUMNS.replace("      meta:   {type: object}\n", "")


def seed_unique(pg_url: str) -> None:
    """The seed's rows with a unique key (NULL keys allowed), and a table without one."""
    rows = [r for r in ROWS if r[1] != "ee@example.com"]
    with psycopg.connect(pg_url) as conn:
        for table in ("people_u", "people_plain"):
            unique = " UNIQUE" if table == "people_u" else ""
            conn.execute(
                f"CREATE TABLE {table} (customer_id text{unique}, email text, points text, "
                "vip text, signed text, tags text, meta text, spend integer)"
            )
            with conn.cursor() as cur:
                cur.executemany(
                    f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", rows
                )


def _materialized(project, name: str, *, in_place: bool):
    result = materialize_model(project, name, in_place=in_place)
    assert result.engine is not None
    try:
        result.finish_checks()
        kind = result.engine.fetch_all(
            f"SELECT relkind FROM pg_class WHERE oid = to_regclass('\"{result.table}\"')"
        )[0][0]
        rows = result.engine.fetch_all(f'SELECT * FROM "{result.table}" ORDER BY 1')
        return result, kind, rows
    finally:
        result.engine.close()


def test_a_model_whose_source_keeps_the_key_unique_is_read_in_place_with_the_same_outcome(
    tmp_path: Path, pg_url: str
) -> None:
    """A sync's model over a table with a unique key is a view over that table (nothing
    written each run), yet gives the same rows, counts and row errors as the long way."""
    seed_unique(pg_url)
    sql = "    sql: select * from people_u where email like '%' or email is null\n"
    project = project_for(tmp_path, pg_url, "  contacts:\n    source: app\n" + sql + UNIQUE_COLUMNS)

    long_way, long_kind, long_rows = _materialized(project, "contacts", in_place=False)
    in_place, kind, rows = _materialized(project, "contacts", in_place=True)

    assert (long_kind, kind) == ("r", "v")
    assert rows == long_rows and len(rows) == 2  # C1 and C5
    assert (in_place.row_count, in_place.rejected_count) == (2, 4)
    assert (long_way.row_count, long_way.rejected_count) == (2, 4)
    assert in_place.rejected == long_way.rejected
    assert {(r.row_key, r.field) for r in in_place.rejected} == {
        ("C2", "email"), ("C2", "points"), ("C2", "signed"), ("row 3", "customer_id"),
        ("C4", "email"), ("C7", "points"),
    }  # fmt: skip
    # Each column's values among the valid rows, counted while checking (a resend's price).
    assert in_place.value_counts == {
        "customer_id": 2, "email": 2, "points": 2, "vip": 2, "signed": 2, "tags": 2, "spend": 2,
    }  # fmt: skip
    assert long_way.value_counts is None


def test_a_model_read_in_place_replaces_the_table_an_earlier_run_left_and_back(
    tmp_path: Path, pg_url: str
) -> None:
    seed_unique(pg_url)
    project = project_for(
        tmp_path,
        pg_url,
        "  c:\n    source: app\n    sql: select * from people_u\n" + UNIQUE_COLUMNS,
    )
    _materialized(project, "c", in_place=False)
    _, kind, rows = _materialized(project, "c", in_place=True)
    assert kind == "v" and len(rows) == 2
    with psycopg.connect(pg_url) as conn:  # the earlier run's table is gone, not left stale
        assert conn.execute("SELECT to_regclass('hw_model_c')").fetchone()[0] is None
    _, kind, rows = _materialized(project, "c", in_place=False)
    assert kind == "r" and len(rows) == 2


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("select * from people_plain", UNIQUE_COLUMNS),  # no unique index
        ("select p.* from people_u p join people_u q using (customer_id)", UNIQUE_COLUMNS),
        ("select *, unnest(array[1, 2]) as n from people_u", UNIQUE_COLUMNS),
        ("select * from people_u", COLUMNS),  # an object column
        # ' 7' and '7' are distinct text, the same integer
        (
            "select * from people_u",
            UNIQUE_COLUMNS.replace("customer_id: {}", "customer_id: {type: integer}"),
        ),
    ],
)
def test_a_model_whose_key_the_source_does_not_keep_unique_is_written_and_checked(
    tmp_path: Path, pg_url: str, sql: str, columns: str
) -> None:
    seed_unique(pg_url)
    project = project_for(tmp_path, pg_url, f"  c:\n    source: app\n    sql: {sql}\n" + columns)
    result, kind, _ = _materialized(project, "c", in_place=True)
    assert kind == "r" and result.value_counts is None


def _diff_in_place(tmp_path: Path, pg_url: str, checks_after_the_row):
    """Diff model ``c`` read in place; ``checks_after_the_row(result, insert)`` runs (or
    starts) the checks, and may call ``insert`` to write a new row, C9, while the sync
    runs. Returns the result and the diff, the engine closed."""
    seed_unique(pg_url)
    project = project_for(
        tmp_path,
        pg_url,
        "  c:\n    source: app\n    sql: select * from people_u\n" + UNIQUE_COLUMNS,
    )
    result = materialize_model(project, "c", in_place=True)
    assert result.engine is not None and result.pending_checks is not None

    def insert() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO people_u (customer_id, email) VALUES ('C9', 'c9@example.com')"
            )

    try:
        diff = compute_diff(
            result.engine, "s", result.table, "customer_id", ["email", "points"],
            checks=lambda: checks_after_the_row(result, insert),
        )  # fmt: skip
    finally:
        result.engine.close()
    return result, diff


def test_a_model_read_in_place_is_checked_and_diffed_from_one_state_of_its_source(
    tmp_path: Path, pg_url: str
) -> None:
    """Rows written while a sync runs are in neither its counts nor its diff, or in both:
    the checks run in the diff's own transaction (REPEATABLE READ)."""

    def checks_then_a_new_row_arrives(result, insert) -> int:
        valid = result.finish_checks()
        insert()
        return valid

    result, diff = _diff_in_place(tmp_path, pg_url, checks_then_a_new_row_arrives)
    assert (result.row_count, result.rejected_count) == (2, 4)
    assert (diff.added, diff.changed, diff.unchanged) == (2, 0, 0)  # not C9


def test_a_model_checked_beside_its_diff_reads_the_same_state_as_the_diff(
    tmp_path: Path, pg_url: str
) -> None:
    """The checking read runs on a second connection while the diff runs (a sync's
    ``start_checks``); it imports the diff transaction's snapshot, so a row written after
    the checks started is in neither, and the row errors are named as the long way names
    them."""

    def checks_started_then_a_new_row_arrives(result, insert):
        finish = result.start_checks()
        insert()
        return finish

    result, diff = _diff_in_place(tmp_path, pg_url, checks_started_then_a_new_row_arrives)
    assert (result.row_count, result.rejected_count) == (2, 4)
    assert (diff.added, diff.changed, diff.unchanged) == (2, 0, 0)  # not C9
    assert {(r.row_key, r.field) for r in result.rejected} == {
        ("C2", "email"), ("C2", "points"), ("C2", "signed"), ("row 3", "customer_id"),
        ("C4", "email"), ("C7", "points"),
    }  # fmt: skip
    assert result.value_counts is not None and result.value_counts["email"] == 2


def test_a_model_read_in_place_is_diffed_in_two_halves_by_two_connections(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is a temporary view the second connection cannot see: it reads the
    view's own SQL instead (the session's typing functions included), and the two halves
    list what one statement lists."""
    from headwater.syncs import diff as diff_module
    from headwater.syncs.snapshot import commit_accepted

    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE people_k (id text PRIMARY KEY, signed text, points text)")
        conn.execute(
            "INSERT INTO people_k SELECT 'K' || lpad(g::text, 3, '0'), "
            "'2024-01-' || lpad((g % 28 + 1)::text, 2, '0'), g::text "
            "FROM generate_series(1, 120) g"
        )
    project = project_for(
        tmp_path,
        pg_url,
        "  k:\n    source: app\n    sql: select * from people_k\n    primary_key: id\n"
        "    columns:\n      id: {}\n      signed: {type: time}\n      points: {type: integer}\n",
    )
    columns = ["signed", "points"]

    def diff():
        result = materialize_model(project, "k", in_place=True)
        assert result.engine is not None and result.relation_sql is not None
        try:
            found = compute_diff(
                result.engine, "k", result.table, "id", columns,
                checks=result.start_checks, model_sql=result.relation_sql,
                model_setup=result.setup,
            )  # fmt: skip
            rows = result.engine.fetch_all(
                f'SELECT hw_key, hw_kind, signed, points FROM "{found.table}" ORDER BY 1'
            )
            if found.added:
                commit_accepted(result.engine, "k", [r[0] for r in rows])
            return (found.added, found.changed, found.removed, found.unchanged), rows
        finally:
            result.engine.close()

    assert diff()[0] == (120, 0, 0, 0)
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE people_k SET points = 'x' WHERE id IN ('K007', 'K110')")  # rejected
        conn.execute("UPDATE people_k SET signed = '2025-02-02' WHERE id IN ('K003', 'K100')")
    halves: list = []
    real = diff_module.SqlAlchemyEngine.copy_beside
    monkeypatch.setattr(
        diff_module.SqlAlchemyEngine,
        "copy_beside",
        lambda self, *a: halves.append(a) or real(self, *a),
    )
    monkeypatch.setattr(diff_module, "SPLIT_SAMPLE_PERCENT", 100)
    monkeypatch.setattr(diff_module, "SPLIT_MIN_SAMPLE", 1)
    split = diff()
    monkeypatch.setattr(diff_module, "SPLIT_MIN_SAMPLE", 10**9)
    assert len(halves) == 1
    assert split == diff()
    assert split[0] == (0, 2, 2, 116)
    assert [r[:2] for r in split[1]] == [
        ("K003", "changed"), ("K007", "removed"), ("K100", "changed"), ("K110", "removed"),
    ]  # fmt: skip


def test_checks_whose_second_connection_fails_run_on_the_first(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second connection to be had: the checking read runs on the diff's own
    connection after the diff, with the same counts and row errors."""
    from headwater.engines import SqlAlchemyEngine

    def no_connection(self, sql, setup, take):
        def result():
            raise RuntimeError("too many connections")

        return result

    monkeypatch.setattr(SqlAlchemyEngine, "_beside", no_connection)
    result, diff = _diff_in_place(tmp_path, pg_url, lambda result, _insert: result.start_checks())
    assert (result.row_count, result.rejected_count, diff.added) == (2, 4, 2)
    assert len(result.rejected) == 6
