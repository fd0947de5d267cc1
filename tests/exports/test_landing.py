"""The landing directory: files replaced whole or not at all, views DuckDB can read."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from headwater.exports.landing import (
    create_views,
    publish,
    safe_part,
    staged,
    table_name,
    view_sql,
    write_parquet_atomic,
)


def test_an_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "t.parquet"
    write_parquet_atomic(pa.table({"x": [1]}), path)
    write_parquet_atomic(pa.table({"x": [2, 3]}), path)
    assert duckdb.sql(f"select sum(x) from read_parquet('{path}')").fetchall() == [(5,)]
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet_atomic(pa.table({"x": [1]}), path)
    with pytest.raises(RuntimeError), staged(path) as temp:
        temp.write_bytes(b"half a file")
        raise RuntimeError("disk full")
    assert duckdb.sql(f"select x from read_parquet('{path}')").fetchall() == [(1,)]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_a_reader_holding_the_old_file_keeps_reading_it(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet_atomic(pa.table({"x": list(range(1000))}), path)
    with open(path, "rb") as held:
        with staged(path) as temp:
            temp.write_bytes(b"new")
            publish({path: temp})
        assert held.read(4) == b"PAR1"
    assert path.read_bytes() == b"new"


def test_names_are_safe():
    assert safe_part("../../etc/passwd") == "_.._etc_passwd"
    assert safe_part("..") == "_" and safe_part("") == "_"
    assert table_name("VIP Users!", "segment_") == "segment_vip_users"
    assert table_name("!!!") == "unnamed"


def test_views_quote_names_and_paths(tmp_path):
    odd = tmp_path / "it's here"
    write_parquet_atomic(pa.table({"x": [1]}), odd / "t.parquet")
    conn = duckdb.connect()
    create_views(conn, {'we"ird': view_sql('we"ird', odd / "*.parquet", union_by_name=True)})
    assert conn.sql('select x from "we""ird"').fetchall() == [(1,)]
