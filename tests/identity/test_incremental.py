"""An incremental run gives exactly what a full run gives from the same last state.

Random records over small pools of emails, phones and CRM ids (so merges, splits by
``max_per_person``, junk values over ``max_records_per_value`` and bad values are common)
are edited at random: records added, removed, re-keyed, renamed, listed twice, rows
shuffled. After each round of edits one copy of the project runs incrementally, another in
full, and every output table must be the same, person ids and merges included; the only
columns left out say which run last computed a row (``resolved_at``, ``run_id``,
``refused_at``). On DuckDB (CSV sources) and inside PostgreSQL (the sources as its tables).
"""

from __future__ import annotations

import csv
import io
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import psycopg
import pytest

from headwater.config import parse_project
from headwater.identity import resolve
from tests.identity.test_resolve import PROJECT, Postgres

EMAILS = [f"u{i}@example.com" for i in range(14)] + [
    "test@example.com",
    " U3@Example.COM ",
    "not-an-email",
    "",
]
PHONES = [f"+1 415 555 01{i:02d}" for i in range(10)] + ["(415) 555-0103", "call me", ""]
NAMES = ["Ann", "Bob", "Carl", "", "Dan"]
CITIES = ["Paris", "Lyon", "", "Rome"]
PLANS = ["gold", "silver", "", "basic"]
DATES = ["2024-01-01", "2024-01-02", "2024-01-02", ""]
CRM_COLUMNS = ["id", "email", "phone", "first_name", "city", "plan", "updated_at"]
SHOP_COLUMNS = ["order_id", "customer_email", "phone", "first_name", "city", "plan", "ordered_at"]
COMPARED = {  # table -> the columns left out
    "customers_links": (),
    "customers_persons": ("resolved_at",),
    "customers_golden": (),
    "customers_refused": ("run_id", "refused_at"),
    "customers_rejected": (),
    "customers_merges": (),
    "customers__hw_ids": (),
}


def _row(rng: random.Random, record_id: str) -> list[str]:
    pick = rng.choice
    return [record_id, pick(EMAILS), pick(PHONES), pick(NAMES), pick(CITIES), pick(PLANS)] + [
        pick(DATES)
    ]


def _edit(rng: random.Random, rows: list[list[str]], prefix: str, counter: list[int]) -> None:
    """A few random edits of one source's rows, in place."""
    for _ in range(rng.randint(1, 4)):
        what = rng.random()
        if what < 0.3 or not rows:
            counter[0] += 1
            rows.append(_row(rng, f"{prefix}{counter[0]}"))
        elif what < 0.45:
            rows.pop(rng.randrange(len(rows)))
        elif what < 0.75:
            row = rows[rng.randrange(len(rows))]
            column = rng.randrange(1, len(row))
            row[column] = _row(rng, "")[column]
        elif what < 0.82:
            rows.append(_row(rng, rng.choice(rows)[0]))  # the same id listed twice
        elif what < 0.9:
            rng.shuffle(rows)
        else:
            rows.insert(0, _row(rng, f"{prefix}{counter[0] + 100}"))
            counter[0] += 101


def _write(root: Path, crm: list[list[str]], shop: list[list[str]]) -> None:
    for name, columns, rows in (("crm", CRM_COLUMNS, crm), ("shop", SHOP_COLUMNS, shop)):
        with (root / f"{name}.csv").open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(columns)
            writer.writerows(rows)


def _rows_of(cursor, table: str, left_out: tuple[str, ...]) -> list[tuple]:
    cursor.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cursor.description]
    keep = [i for i, name in enumerate(names) if name not in left_out]
    rows = [tuple(row[i] for i in keep) for row in cursor.fetchall()]
    return sorted(rows, key=lambda row: tuple(str(v) for v in row))


def _tables(root: Path, url: str | None = None) -> dict[str, list[tuple]]:
    if url is not None:
        with psycopg.connect(url) as conn:
            cursor = conn.cursor()
            return {name: _rows_of(cursor, name, out) for name, out in COMPARED.items()}
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return {name: _rows_of(con, name, out) for name, out in COMPARED.items()}
    finally:
        con.close()


class _Place:
    """Where a copy of the project lives: a directory, and for PostgreSQL its database."""

    def __init__(self, root: Path, url: str | None) -> None:
        self.root, self.url = root, url

    def write(self, crm: list[list[str]], shop: list[list[str]]) -> None:
        _write(self.root, crm, shop)
        if self.url is not None:
            texts = []
            for columns, rows in ((CRM_COLUMNS, crm), (SHOP_COLUMNS, shop)):
                out = io.StringIO()
                csv.writer(out, lineterminator="\n").writerows([columns, *rows])
                texts.append(out.getvalue())
            Postgres(self.root, self.url).load(*texts)

    def project(self):
        if self.url is None:
            return parse_project(PROJECT, root=self.root)
        return parse_project(Postgres(self.root, self.url).text(), root=self.root)

    def tables(self) -> dict[str, list[tuple]]:
        return _tables(self.root, self.url)


def _clone(source: _Place, target: _Place) -> None:
    """``target`` becomes a copy of ``source``: its files, and its database."""
    shutil.rmtree(target.root, ignore_errors=True)
    shutil.copytree(source.root, target.root)
    if source.url is not None and target.url is not None:
        admin = source.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            name, template = target.url.rsplit("/", 1)[1], source.url.rsplit("/", 1)[1]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


@pytest.fixture(params=["duckdb", "postgres"])
def places(request, tmp_path: Path):
    """(incremental, full): two copies of a project, on one engine."""
    if request.param == "duckdb":
        yield _Place(tmp_path / "inc", None), _Place(tmp_path / "full", None)
        return
    url = request.getfixturevalue("pg_url")
    full_url = url + "_full"
    yield _Place(tmp_path / "inc", url), _Place(tmp_path / "full", full_url)
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{full_url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.mark.parametrize("seed", range(6))
def test_an_incremental_run_gives_what_a_full_run_gives(places, seed: int):
    inc, full = places
    rng = random.Random(seed)
    counter = [0]
    crm = [_row(rng, str(i)) for i in range(12)]
    shop = [_row(rng, f"o{i}") for i in range(16)]
    inc.root.mkdir()
    inc.write(crm, shop)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    first = resolve(inc.project(), "customers", clock=lambda: start)
    assert first.mode == "full" and first.error is None
    for round_ in range(1, 5):
        _edit(rng, crm, "", counter)
        _edit(rng, shop, "o", counter)
        inc.write(crm, shop)
        _clone(inc, full)
        now = start + timedelta(days=round_)
        got = resolve(inc.project(), "customers", clock=lambda now=now: now)
        want = resolve(full.project(), "customers", clock=lambda now=now: now, full=True)
        assert got.mode == "incremental" and want.mode == "full", (got.error, want.error)
        assert got.error is None and want.error is None
        assert got.touched <= got.records
        assert (got.persons, got.new_persons, got.merges, got.refused, got.rejected) == (
            want.persons,
            want.new_persons,
            want.merges,
            want.refused,
            want.rejected,
        )
        assert inc.tables() == full.tables(), f"round {round_}"


def test_an_incremental_run_resolves_only_what_a_change_reaches(tmp_path: Path):
    rows = [[str(i), f"u{i}@example.com", "", "N", "", "", "2024-01-01"] for i in range(50)]
    shop = [[f"o{i}", f"u{i}@example.com", "", "", "", "", "2024-01-01"] for i in range(50)]
    _write(tmp_path, rows, shop)
    project = parse_project(PROJECT, root=tmp_path)
    assert resolve(project, "customers").mode == "full"
    shop.append(["o-new", "u7@example.com", "", "", "Oslo", "", "2024-03-01"])
    _write(tmp_path, rows, shop)
    report = resolve(project, "customers")
    # The new order, and the person it joins (CRM record 7 and order o7).
    assert (report.mode, report.changed, report.touched) == ("incremental", 1, 3)
    assert report.new_persons == 0 and report.persons == 50
    golden = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        assert golden.execute(
            "SELECT g.city FROM customers_golden AS g JOIN customers_links AS l "
            "USING (person_id) WHERE l.record_id = 'o-new'"
        ).fetchall() == [("Oslo",)]
    finally:
        golden.close()
    again = resolve(project, "customers")
    assert (again.mode, again.changed, again.touched) == ("incremental", 0, 0)
    assert again.persons == 50


def test_a_changed_configuration_or_full_runs_everything_again(tmp_path: Path):
    rows = [[str(i), f"u{i}@example.com", "", "N", "", "", "2024-01-01"] for i in range(5)]
    _write(tmp_path, rows, [])
    project = parse_project(PROJECT, root=tmp_path)
    assert resolve(project, "customers").mode == "full"
    assert resolve(project, "customers").mode == "incremental"
    assert resolve(project, "customers", full=True).mode == "full"
    changed = parse_project(
        PROJECT.replace("max_records_per_value: 3", "max_records_per_value: 4"), root=tmp_path
    )
    report = resolve(changed, "customers")
    assert (report.mode, report.touched) == ("full", 5)
    assert resolve(changed, "customers").mode == "incremental"
