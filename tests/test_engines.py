"""The engine verbs behave the same on DuckDB, PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from headwater.engines import DuckDBEngine, Engine, SqlAlchemyEngine, open_engine
from headwater.errors import ConfigError

ROWS = pa.table(
    {
        "id": ["a", "b", "c"],
        "points": [1, None, 3],
        "tags": [["x", 'quote " and \\ slash'], None, [None, "z"]],
        "note": ["", None, "comma, inside"],
        "seen_at": [datetime(2024, 1, 1, tzinfo=UTC)] * 3,
        "vip": [True, False, None],
    }
)


@pytest.fixture(params=["duckdb", "postgres", "sqlite"])
def engine(request, tmp_path) -> Iterator[Engine]:
    if request.param == "duckdb":
        url = "duckdb:///:memory:"
    elif request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path}/warehouse.db"
    opened = open_engine(url)
    yield opened
    opened.close()


def test_open_engine_chooses_the_engine_by_url(tmp_path, pg_url):
    with open_engine("duckdb:///:memory:") as duck:
        assert isinstance(duck, DuckDBEngine) and duck.dialect == "duckdb"
    with open_engine(f"duckdb:///{tmp_path}/w.duckdb") as duck_file:
        duck_file.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert (tmp_path / "w.duckdb").exists()
    with open_engine(pg_url) as pg:
        assert isinstance(pg, SqlAlchemyEngine) and pg.dialect == "postgres"
    with open_engine(f"sqlite:///{tmp_path}/w.db") as lite:
        assert lite.dialect == "sqlite"
    with pytest.raises(ConfigError, match="mysql"):
        open_engine("mysql://localhost/db")


def test_load_arrow_round_trips_nulls_empty_strings_and_arrays(engine):
    assert engine.load_arrow("people", ROWS) == 3
    got = engine.fetch_arrow("SELECT * FROM people ORDER BY id").to_pylist()
    assert [r["points"] for r in got] == [1, None, 3]
    assert [r["note"] for r in got] == ["", None, "comma, inside"]
    assert [r["vip"] in (True, 1) for r in got] == [True, False, False]
    if engine.dialect != "sqlite":  # SQLite keeps arrays as JSON text
        assert [r["tags"] for r in got] == [["x", 'quote " and \\ slash'], None, [None, "z"]]


def test_load_arrow_appends_when_not_replacing(engine):
    engine.load_arrow("people", ROWS)
    assert engine.load_arrow("people", ROWS.slice(0, 1), replace=False) == 4
    assert engine.load_arrow("people", ROWS.slice(0, 1)) == 1


def test_load_arrow_accepts_a_stream_of_batches(engine):
    batches = ROWS.to_batches(max_chunksize=1)
    assert engine.load_arrow("people", iter(batches)) == 3


def test_iter_arrow_streams_in_batches_while_the_engine_keeps_working(engine):
    engine.load_arrow("people", ROWS)
    engine.execute("CREATE TABLE log (id TEXT)")
    sizes = []
    for batch in engine.iter_arrow("SELECT id FROM people ORDER BY id", batch_size=2):
        sizes.append(batch.num_rows)
        engine.execute("INSERT INTO log VALUES (:id)", {"id": batch.column(0)[0].as_py()})
    assert sizes == [2, 1]
    assert engine.fetch_all("SELECT count(*) FROM log") == [(2,)]


def test_named_parameters_work_on_every_engine(engine):
    engine.load_arrow("people", ROWS)
    rows = engine.fetch_all("SELECT id FROM people WHERE id = :wanted", {"wanted": "b"})
    assert rows == [("b",)]


def test_a_failed_transaction_leaves_nothing_behind(engine):
    engine.load_arrow("people", ROWS)
    with pytest.raises(RuntimeError), engine.transaction():
        engine.execute("DELETE FROM people")
        raise RuntimeError("boom")
    assert engine.fetch_all("SELECT count(*) FROM people") == [(3,)]
    with engine.transaction():
        engine.execute("DELETE FROM people WHERE id = 'a'")
    assert engine.fetch_all("SELECT count(*) FROM people") == [(2,)]


def test_table_exists_sees_tables_and_not_missing_ones(engine):
    assert not engine.table_exists("people")
    engine.load_arrow("people", ROWS)
    assert engine.table_exists("people")


def test_transpile_rewrites_duckdb_sql_for_the_target(engine):
    if engine.dialect == "sqlite":  # no arrays in SQLite: check a type cast instead
        sql = engine.transpile("SELECT CAST(7 AS VARCHAR) || 'x' AS found")
        assert engine.fetch_all(sql)[0][0] == "7x"
        return
    sql = engine.transpile("SELECT list_contains([1, 2], 2) AS found")
    assert engine.fetch_all(sql)[0][0] is True


def test_a_percent_sign_in_sql_is_not_taken_for_a_placeholder(engine):
    engine.load_arrow("people", ROWS)
    assert engine.fetch_all("SELECT count(*) FROM people WHERE note LIKE '%,%'") == [(1,)]
    streamed = list(engine.iter_arrow("SELECT id FROM people WHERE note LIKE '%inside'"))
    assert [b.column(0).to_pylist() for b in streamed] == [["c"]]
