"""Models in the embedded DuckDB warehouse: typing in SQL, bad rows rejected, rest kept."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from headwater.config import ColumnSpec, parse_project
from headwater.engines import DuckDBEngine
from headwater.errors import FatalError
from headwater.models import materialize_model, model_database

CONTACTS_CSV = """customer_id,email,points,vip,signed_up_at,tags,first_name
C1,ada@example.com,10,true,2024-01-01,vip;new,Ada
C2,not-an-email,abc,yes,2024-01-02T10:00:00+02:00,,Bo
,cy@example.com,5,no,2024-01-03,,Cy
C4,di@example.com,3.5,maybe,not a date,x,Di
C5,ed@example.com,4,1,2024-01-05,,{long}
C6,fa@example.com, 6 ,0,2024-01-06,"a; b",Fa
C6,fb@example.com,7,0,2024-01-07,,Fb
""".replace("{long}", "A" * 300)

CONTACTS_MODEL = """
sources:
  crm: {type: csv, path: contacts.csv}
models:
  contacts:
    sql: select * from crm
    primary_key: customer_id
    columns:
      customer_id:  {type: string, required: true}
      email:        {type: string, pattern: '[^@\\s]+@[^@\\s]+\\.[^@\\s]+'}
      points:       {type: integer}
      vip:          {type: boolean}
      signed_up_at: {type: time}
      tags:         {type: array, split: ";"}
      first_name:   {type: string, max_length: 255}
"""


@pytest.fixture
def engine():
    with DuckDBEngine(":memory:") as engine:
        yield engine


def contacts_project(tmp_path: Path):
    (tmp_path / "contacts.csv").write_text(CONTACTS_CSV, encoding="utf-8")
    return parse_project(CONTACTS_MODEL, root=tmp_path)


def test_bad_rows_are_rejected_with_row_and_field_and_the_rest_are_typed(
    tmp_path: Path, engine: DuckDBEngine
) -> None:
    result = materialize_model(contacts_project(tmp_path), "contacts", engine)

    problems = {(r.row_key, r.field): r.reason for r in result.rejected}
    assert problems == {
        ("C2", "email"): "does not match the pattern: 'not-an-email'",
        ("C2", "points"): "expected integer, got 'abc'",
        ("row 3", "customer_id"): "required but missing",
        ("C4", "points"): "expected integer, got '3.5'",
        ("C4", "vip"): "expected boolean, got 'maybe'",
        ("C4", "signed_up_at"): "expected time, got 'not a date'",
        ("C5", "first_name"): "longer than 255 characters (300)",
        ("C6", "customer_id"): "duplicate primary key: 2 rows have it",
    }
    values = {(r.row_key, r.field): r.value for r in result.rejected}
    assert values[("C2", "email")] == "not-an-email" and values[("C2", "points")] == "abc"
    assert values[("row 3", "customer_id")] is None  # missing: no value to show
    assert result.rejected_count == 6
    assert result.row_count == 1
    rows = engine.fetch_arrow(f"SELECT * FROM {result.table}").to_pylist()
    assert rows == [
        {
            "customer_id": "C1",
            "email": "ada@example.com",
            "points": 10,
            "vip": True,
            "signed_up_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            "tags": ["vip", "new"],
            "first_name": "Ada",
        }
    ]


def test_rejection_details_are_bounded_but_every_bad_row_is_counted(
    tmp_path: Path, engine: DuckDBEngine
) -> None:
    lines = ["id,n"] + [f"K{i},{'x' if i % 2 else i}" for i in range(1, 201)]
    (tmp_path / "n.csv").write_text("\n".join(lines) + "\n")
    project = parse_project(
        "sources: {nums: {type: csv, path: n.csv}}\n"
        "models: {nums: {sql: select * from nums, primary_key: id,"
        " columns: {id: {}, n: {type: integer}}}}\n",
        root=tmp_path,
    )

    result = materialize_model(project, "nums", engine, max_details=5)

    assert result.rejected_count == 100
    assert result.row_count == 100
    assert [r.row_key for r in result.rejected] == ["K1", "K3", "K5", "K7", "K9"]
    assert [r.row_number for r in result.rejected] == [1, 3, 5, 7, 9]


def test_nested_json_arrays_and_objects_become_typed_columns(
    tmp_path: Path, engine: DuckDBEngine
) -> None:
    events = [
        {"id": "e1", "who": {"id": "C1"}, "tags": ["a", "b"], "props": {"amount": 10}},
        {"id": "e2", "who": {"id": "C2"}, "tags": '["c"]', "props": '{"amount": 5}'},
        {"id": "e3", "who": {"id": "C3"}, "tags": "nope", "props": "[1, 2]"},
    ]
    (tmp_path / "events.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))
    project = parse_project(
        """
sources: {rewards: {type: ndjson, path: events.ndjson}}
models:
  rewards:
    sql: select id, who.id as customer_id, tags, props from rewards
    primary_key: id
    columns: {id: {}, customer_id: {}, tags: {type: array}, props: {type: object}}
""",
        root=tmp_path,
    )

    result = materialize_model(project, "rewards", engine)

    # Mixed JSON values arrive as JSON text; lists and objects inside still check.
    rows = engine.fetch_arrow(f"SELECT * FROM {result.table} ORDER BY id").to_pylist()
    assert [(r["id"], r["customer_id"], r["tags"], json.loads(r["props"])) for r in rows] == [
        ("e1", "C1", ["a", "b"], {"amount": 10}),
        ("e2", "C2", ["c"], {"amount": 5}),
    ]
    assert {(r.row_key, r.field) for r in result.rejected} == {("e3", "tags"), ("e3", "props")}


def test_parquet_lists_and_structs_keep_their_shape(tmp_path: Path, engine: DuckDBEngine) -> None:
    table = pa.table(
        {
            "order_id": ["O1", "O2"],
            "items": [["SKU-1", "SKU-2"], []],
            "meta": [{"channel": "web"}, {"channel": "app"}],
            "price": [19.5, 3],
        }
    )
    pq.write_table(table, tmp_path / "orders.parquet")
    project = parse_project(
        """
sources: {orders: {type: parquet, path: '*.parquet'}}
models:
  orders:
    sql: select * from orders
    primary_key: order_id
    columns: {order_id: {}, items: {type: array}, meta: {type: object}, price: {type: float}}
""",
        root=tmp_path,
    )

    result = materialize_model(project, "orders", engine)

    rows = engine.fetch_arrow(f"SELECT * FROM {result.table} ORDER BY order_id").to_pylist()
    assert [(r["items"], json.loads(r["meta"]), r["price"]) for r in rows] == [
        (["SKU-1", "SKU-2"], {"channel": "web"}, 19.5),
        ([], {"channel": "app"}, 3.0),
    ]
    assert result.rejected_count == 0


def test_a_declared_column_the_sql_does_not_return_is_a_fatal_error_naming_it(
    tmp_path: Path, engine: DuckDBEngine
) -> None:
    project = contacts_project(tmp_path)
    project.models["contacts"].columns["phone"] = project.models["contacts"].columns["email"]

    with pytest.raises(FatalError, match="model 'contacts': column 'phone' is declared"):
        materialize_model(project, "contacts", engine)


def test_sql_that_fails_is_a_fatal_error_naming_the_model(
    tmp_path: Path, engine: DuckDBEngine
) -> None:
    project = contacts_project(tmp_path)
    project.models["contacts"].sql = "select nope from crm"

    with pytest.raises(FatalError, match="model 'contacts': its SQL failed"):
        materialize_model(project, "contacts", engine)


def test_a_model_can_read_another_model(tmp_path: Path, engine: DuckDBEngine) -> None:
    project = contacts_project(tmp_path)
    project.models["vips"] = project.models["contacts"].model_copy(
        update={"sql": "select * from contacts where vip"}
    )

    result = materialize_model(project, "vips", engine)

    assert result.row_count == 1
    assert result.rejected_count == 0  # the bad rows never got past the first model


def test_rerunning_replaces_the_model_table(tmp_path: Path, engine: DuckDBEngine) -> None:
    project = contacts_project(tmp_path)
    materialize_model(project, "contacts", engine)
    (tmp_path / "contacts.csv").write_text(
        "customer_id,email,points,vip,signed_up_at,tags,first_name\n"
        "C9,z@example.com,1,true,2024-01-01,,Zed\nC8,y@example.com,2,false,2024-01-01,,Yan\n"
    )

    result = materialize_model(project, "contacts", engine)

    assert result.row_count == 2
    assert engine.fetch_all(f"SELECT count(*) FROM {result.table}") == [(2,)]


def test_a_sqlite_database_model_runs_its_sql_there_and_is_checked_in_duckdb(
    tmp_path: Path,
) -> None:
    db = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id TEXT, email TEXT, age TEXT)")
        conn.exec_driver_sql(
            "INSERT INTO users VALUES ('u1', 'a@example.com', '31'), ('u2', 'b@x.io', 'old')"
        )
    db.dispose()
    project = parse_project(
        """
warehouse: 'duckdb:///:memory:'
sources: {app: {type: sql, url: 'sqlite:///app.db'}}
models:
  users:
    source: app
    sql: select id, email, age from users where email like '%@%'
    primary_key: id
    columns: {id: {}, email: {}, age: {type: integer}}
""",
        root=tmp_path,
    )

    result = materialize_model(project, "users")
    try:
        assert result.engine is not None and result.engine.dialect == "duckdb"
        assert result.engine.fetch_all(f"SELECT * FROM {result.table}") == [
            ("u1", "a@example.com", 31)
        ]
        assert [(r.row_key, r.field) for r in result.rejected] == [("u2", "age")]
    finally:
        result.engine.close()


def test_a_file_model_joining_a_database_table_copies_the_table_once(
    tmp_path: Path, engine: DuckDBEngine
) -> None:
    db = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with db.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE tiers (customer_id TEXT, tier TEXT)")
        conn.exec_driver_sql("INSERT INTO tiers VALUES ('C1', 'gold')")
    db.dispose()
    project = parse_project(
        CONTACTS_MODEL.replace(
            "sources:\n", "sources:\n  tiers: {type: sql, url: 'sqlite:///app.db', table: tiers}\n"
        ).replace(
            "sql: select * from crm",
            "sql: select crm.*, tiers.tier from crm left join tiers using (customer_id)",
        ),
        root=tmp_path,
    )
    project.models["contacts"].columns["tier"] = ColumnSpec()
    (tmp_path / "contacts.csv").write_text(CONTACTS_CSV, encoding="utf-8")

    assert model_database(project, "contacts") is None
    result = materialize_model(project, "contacts", engine)

    assert engine.fetch_all(f"SELECT customer_id, tier FROM {result.table}") == [("C1", "gold")]


def test_the_example_project_models_reject_exactly_the_planted_bad_rows(
    tmp_path: Path, engine: DuckDBEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.config import load_project

    template = Path(__file__).resolve().parents[2] / "src/headwater/project_template"
    monkeypatch.setenv("BRAZE_API_KEY", "example-key")
    project = load_project(template)

    results = {
        name: materialize_model(project, name, engine)
        for name, model in project.models.items()
        if model.identity is None  # identity models resolve, see tests/identity
    }

    planted = {
        name: sorted((r.row_key, r.field) for r in res.rejected) for name, res in results.items()
    }
    assert planted == {
        "contacts": [
            ("C00042", "email"),
            ("C00098", "loyalty_points"),
            ("C00234", "first_name"),
            ("C00318", "customer_id"),
            ("C00318", "customer_id"),
            ("row 151", "customer_id"),
        ],
        "orders": [("O000078", "price")],
        "rewards": [("rw_00013", "earned_at")],
    }
    assert results["contacts"].row_count == 2_000 - 6
    assert results["orders"].row_count == 4_000 - 1
    assert results["rewards"].row_count == 600 - 1


def test_one_odd_value_deep_in_a_big_csv_rejects_its_row_not_the_read(tmp_path, engine):
    """A value past the type sample makes the types be sniffed again from every row: its
    column turns into text and the model's declared type refuses just that row, in file
    order."""
    lines = ["id,points,seen"] + [f"U{i},{i},2024-01-01" for i in range(30_000)]
    lines[28_001] = "U28000,n/a,2024-01-01"
    lines[29_001] = "U29000,7,not a date"
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    project = parse_project(
        """
sources:
  big: {type: csv, path: big.csv}
models:
  big:
    sql: select * from big
    primary_key: id
    columns:
      id: {type: string, required: true}
      points: {type: integer}
      seen: {type: time}
""",
        root=tmp_path,
    )
    result = materialize_model(project, "big", engine)
    assert (result.row_count, result.rejected_count) == (29_998, 2)
    assert [(r.row_key, r.field) for r in result.rejected] == [
        ("U28000", "points"),
        ("U29000", "seen"),
    ]
    first = engine.fetch_all(f'SELECT id, points FROM "{result.table}" LIMIT 3')
    assert first == [("U0", 0), ("U1", 1), ("U2", 2)]
