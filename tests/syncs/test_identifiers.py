"""Names a user chooses (sources, models, columns, syncs) keep their case on every engine:
PostgreSQL folds unquoted names to lower case, so every name Headwater writes into SQL is
quoted, where the table is made and wherever it is read."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from headwater.config import parse_project
from headwater.sandbox.testing import run_sandbox
from headwater.syncs.engine import run_sync

MODEL = """
models:
  People:
    {where}
    sql: 'select * from "AppDb"'
    primary_key: CustomerId
    columns:
      CustomerId: {{required: true}}
      EMail: {{}}
      LoyaltyPoints: {{type: integer}}
syncs:
  PeopleToBraze:
    model: People
    destination: braze
    identifier: {{external_id: CustomerId}}
    mapping: {{email: EMail, loyalty_points: LoyaltyPoints}}
"""


def _postgres_source(tmp_path: Path, pg_url: str, rows: list[tuple]) -> str:
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            'CREATE TABLE IF NOT EXISTS "People" '
            '("CustomerId" text, "EMail" text, "LoyaltyPoints" integer)'
        )
        conn.execute('DELETE FROM "People"')
        with conn.cursor() as cur:
            cur.executemany('INSERT INTO "People" VALUES (%s, %s, %s)', rows)
    return f"sources:\n  AppDb: {{type: sql, url: '{pg_url}', table: People}}\n"


def _csv_source(tmp_path: Path, rows: list[tuple]) -> str:
    lines = ["CustomerId,EMail,LoyaltyPoints", *(",".join(map(str, r)) for r in rows)]
    (tmp_path / "People.csv").write_text("\n".join(lines) + "\n")
    return "sources:\n  AppDb: {type: csv, path: People.csv}\n"


@pytest.mark.parametrize("where", ["postgres", "duckdb"])
def test_mixed_case_names_sync_and_diff_on_every_engine(
    tmp_path: Path, request: pytest.FixtureRequest, where: str
) -> None:
    first = [("C1", "a@example.com", 1), ("C2", "b@example.com", 2)]
    second = [("C1", "a@example.com", 1), ("C2", "b@example.com", 3)]

    def project(rows: list[tuple], url: str):
        if where == "postgres":
            sources = _postgres_source(tmp_path, request.getfixturevalue("pg_url"), rows)
            model = MODEL.format(where="source: AppDb").replace('"AppDb"', '"People"')
        else:
            sources = _csv_source(tmp_path, rows)
            model = MODEL.format(where="")
        text = (
            "state: sqlite:///.headwater/state.db\n"
            f"destinations:\n  braze: {{url: {url}, api_key: k}}\n" + sources + model
        )
        return parse_project(text, root=tmp_path)

    with run_sandbox(key="k") as sandbox:
        report = run_sync(project(first, sandbox.url), "PeopleToBraze")
        assert (report.status, report.error, report.added) == ("succeeded", None, 2)

        report = run_sync(project(second, sandbox.url), "PeopleToBraze")
        assert (report.status, report.error) == ("succeeded", None)
        assert (report.changed, report.unchanged, report.sent) == (1, 1, 1)
        assert sandbox.user("C2")["custom_attributes"]["loyalty_points"] == 3
