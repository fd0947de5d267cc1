"""Survivorship rules give the values the guide documents, ties included."""

from __future__ import annotations

from pathlib import Path

import duckdb

from headwater.config import parse_project
from headwater.identity import resolve

PROJECT = """
state: sqlite:///state.db
warehouse: duckdb:///warehouse.duckdb
sources:
  first: {type: csv, path: a.csv}
  second: {type: csv, path: b.csv}
models:
  people:
    identity:
      keys:
        email: {type: email}
      sources:
        a: {sql: select * from first, record_id: id, keys: {email: email}, updated_at: at, priority: 1}
        b: {sql: select * from second, record_id: id, keys: {email: email}, updated_at: at, priority: 2}
    columns:
      first_name: {type: string, survivorship: source_priority}
      city: {type: string, survivorship: most_recent}
      plan: {type: string, survivorship: most_frequent}
"""

# Each person's records are linked by email; the comments say what each rule must pick.
A = """id,email,first_name,city,plan,at
x1,x@example.com,Old,Paris,basic,2024-01-01
x2,x@example.com,New,Nice,silver,2024-01-03
y1,y@example.com,,Rome,gold,
y2,y@example.com,,,gold,2024-01-01
z1,z@example.com,Zed,,silver,2024-01-02
z2,z@example.com,Zoe,,gold,2024-01-02
"""
B = """id,email,first_name,city,plan,at
x3,x@example.com,Later,Lyon,basic,2024-01-05
x4,x@example.com,Latest,,silver,2024-01-06
y3,y@example.com,Bee,Oslo,platinum,2024-01-09
z3,z@example.com,,Bern,,
z4,z@example.com,,Bonn,,
"""


def test_each_rule_and_its_tie_breaks(tmp_path: Path):
    (tmp_path / "a.csv").write_text(A)
    (tmp_path / "b.csv").write_text(B)
    report = resolve(parse_project(PROJECT, root=tmp_path), "people")
    assert report.error is None and report.persons == 3
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT l.record_id, g.first_name, g.city, g.plan FROM people_golden AS g "
            "JOIN people_links AS l USING (person_id) WHERE l.record_id IN ('x1', 'y1', 'z1')"
        ).fetchall()
    finally:
        con.close()
    golden = {record: values for record, *values in rows}
    # x: source_priority keeps source a (priority 1) over b's later records, the most recent
    # of a's two breaking the tie. most_recent: x4 is the latest but has no city, so x3's.
    # most_frequent: basic and silver twice each; the most recent record (x4) says silver.
    assert golden["x1"] == ["New", "Lyon", "silver"]
    # y: a's records have no first name (nulls never win), so b's. most_recent: a record
    # without a time is older than any with one. most_frequent: gold twice beats the newer
    # platinum.
    assert golden["y1"] == ["Bee", "Oslo", "gold"]
    # z: a's two names at the same time: the record id breaks the tie (z1). Neither city
    # has a time: the record id again (z3). Plan: one each at the same time, z1 first.
    assert golden["z1"] == ["Zed", "Bern", "silver"]
