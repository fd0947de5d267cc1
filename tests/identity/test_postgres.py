"""An identity model whose sources are all in one PostgreSQL database is resolved inside
it: its tables are written there (in ``output_schema`` when set), key texts are cleaned
there once, and a sync over the model reads the golden table in place. The core
behaviour is in test_resolve.py, run on both engines."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from headwater.config import load_project
from headwater.engines import DuckDBEngine, SqlAlchemyEngine
from headwater.identity import emails, materialize_any, phones, resolve
from headwater.syncs.engine import run_sync
from tests.identity.test_normalizers import EMAILS, _sample_phones
from tests.identity.test_resolve import Postgres, Warehouse
from tests.identity.test_sync_and_cli import sandbox, write_project  # noqa: F401


def test_tables_go_to_the_output_schema_and_known_texts_are_not_cleaned_again(
    tmp_path: Path, pg_url
):
    where = Postgres(tmp_path, pg_url, schema="identity")
    project = where.project()
    first = resolve(project, "customers")
    assert first.error is None, first.error
    assert first.tables["golden"] == "identity.customers_golden"
    assert (first.records, first.rejected, first.refused) == (13, 3, 2)
    assert first.cleaned > 0 and first.mode == "full"
    with psycopg.connect(pg_url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'identity'"
            ).fetchall()
        }
        assert {"customers_golden", "customers__hw_norm", "customers__hw_ids"} <= tables
        assert not conn.execute("SELECT to_regclass('public.customers_golden')").fetchone()[0]
        # The odd texts went through the libraries and were written back with their reason.
        reasons = dict(
            conn.execute(
                "SELECT raw, reason FROM identity.customers__hw_norm WHERE value IS NULL"
            ).fetchall()
        )
    assert reasons["not-an-email"].startswith("not a valid email")
    assert reasons["call me"].startswith("not a phone number")
    again = resolve(project, "customers")
    assert (again.cleaned, again.new_persons, again.mode, again.changed) == (0, 0, "incremental", 0)


def test_output_schema_is_refused_for_a_model_resolved_in_the_warehouse(tmp_path: Path):
    project = Warehouse(tmp_path).project()
    project.models["customers"].identity.output_schema = "identity"
    report = resolve(project, "customers")
    assert report.status == "failed" and "output_schema" in report.error


def test_materialize_any_gives_the_golden_table_in_postgresql(tmp_path: Path, pg_url):
    project = Postgres(tmp_path, pg_url, schema="identity").project()
    result = materialize_any(project, "customers")
    try:
        assert isinstance(result.engine, SqlAlchemyEngine)
        rows = result.engine.fetch_all(f'SELECT count(*) FROM "{result.table}"')
        assert rows[0][0] == result.row_count > 0
    finally:
        result.engine.close()


def _pg_project(root: Path, url: str, sandbox_url: str, key: str) -> Path:
    """test_sync_and_cli's project with its two sources as PostgreSQL tables."""
    write_project(root, sandbox_url, key)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE crm (id text, email text, first_name text)")
        conn.execute("CREATE TABLE shop (order_id text, email text, phone text, first_name text)")
        for name in ("crm", "shop"):
            header, _, rows = (root / f"{name}.csv").read_text().partition("\n")
            with conn.cursor().copy(f"COPY {name} FROM STDIN (FORMAT csv)") as copy:
                copy.write(rows)
    dsn = url.replace("postgresql://", "postgresql+psycopg://", 1)
    path = root / "headwater.yml"
    text = path.read_text()
    text = text.replace(
        "crm_contacts: {type: csv, path: crm.csv}",
        f"crm_contacts: {{type: sql, url: '{dsn}', table: crm}}",
    ).replace(
        "shop_orders: {type: csv, path: shop.csv}",
        f"shop_orders: {{type: sql, url: '{dsn}', table: shop}}",
    )
    path.write_text(text.replace("    identity:\n", "    identity:\n      output_schema: hw\n", 1))
    return root


def test_a_sync_reads_the_golden_table_in_postgresql(tmp_path, pg_url, sandbox):  # noqa: F811
    root = _pg_project(tmp_path, pg_url, sandbox.url, sandbox.key)
    report = run_sync(load_project(root), "people_to_braze")
    assert (report.status, report.added, report.sent) == ("succeeded", 3, 3), report.error
    users = {u["external_id"]: u for u in sandbox.users()}
    assert {u.get("first_name") for u in users.values()} == {"Ann", "Bob", "Zoe"}
    # The sync's snapshot is kept beside the golden table, in the same database.
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM hw.people_golden").fetchone()[0] == 3
        assert conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE '%people_to_braze%'"
        ).fetchone()[0]
    again = run_sync(load_project(root), "people_to_braze")
    assert (again.added, again.changed, again.sent) == (0, 0, 0)
    assert not (root / ".headwater" / "warehouse.duckdb").exists()


def test_a_merge_in_postgresql_is_sent_to_braze(tmp_path, pg_url, sandbox):  # noqa: F811
    root = _pg_project(tmp_path, pg_url, sandbox.url, sandbox.key)
    path = root / "headwater.yml"
    path.write_text(
        path.read_text().replace(
            "      keys: {email:", "      merge_in_braze: true\n      keys: {email:", 1
        )
    )
    assert run_sync(load_project(root), "people_to_braze").sent == 3
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO shop VALUES ('o3', 'bob@example.com', '+33 6 12 34 56 78', 'Robert')"
        )
    second = run_sync(load_project(root), "people_to_braze")
    assert second.status == "succeeded", second.error
    assert sandbox.user("p_3") is None and sandbox.user("p_2") is not None
    with psycopg.connect(pg_url) as conn:
        ledger = conn.execute(
            "SELECT destination, merge_external_id, keep_external_id FROM hw.people__hw_braze_merges"
        ).fetchall()
    assert ledger == [("braze", "p_3", "p_2")]


def _fast_in(engine, values: list[str], module, sql) -> dict[str, str]:
    engine.execute("DROP TABLE IF EXISTS t0")
    engine.execute("DROP TABLE IF EXISTS t")
    engine.execute("CREATE TEMP TABLE t0 (raw VARCHAR)")
    literals = ", ".join("('" + v.replace("'", "''") + "')" for v in values)
    engine.execute(f"INSERT INTO t0 VALUES {literals}")
    engine.execute(f"CREATE TEMP TABLE t AS SELECT raw, {module.prepare_sql('raw')} AS c FROM t0")
    return dict(engine.fetch_all(sql(engine)))


@pytest.mark.parametrize("region", ["US", "GB", None])
def test_the_fast_paths_accept_the_same_values_in_postgresql(pg_url, region):
    """PostgreSQL's regular expressions are not RE2: the compiled phonenumbers patterns
    and the email pattern must still accept exactly what DuckDB accepts."""
    values = _sample_phones(7)

    def phone_sql(engine):
        codes = [r[0] for r in engine.fetch_all(phones.plus_codes_sql("t"))]
        return phones.fast_e164_sql("t", region, codes, engine.dialect)

    def email_sql(engine):
        return emails.fast_email_sql("t", engine.dialect)

    pg, duck = SqlAlchemyEngine(pg_url), DuckDBEngine()
    try:
        fast = _fast_in(pg, values, phones, phone_sql)
        assert fast == _fast_in(duck, values, phones, phone_sql)
        for value, e164 in fast.items():
            assert phones.normalize_phone(value, region) == (e164, None), value
        fast = _fast_in(pg, EMAILS, emails, email_sql)
        assert fast == _fast_in(duck, EMAILS, emails, email_sql)
    finally:
        pg.close()
        duck.close()


def test_one_run_at_a_time_per_model_in_a_database(tmp_path: Path, pg_url):
    project = Postgres(tmp_path, pg_url).project()
    with psycopg.connect(pg_url) as other:  # another run holds the model's lock
        other.execute("SELECT pg_advisory_lock(hashtext('headwater identity customers'))")
        report = resolve(project, "customers")
        assert report.status == "failed" and "another run" in report.error
    assert resolve(project, "customers").error is None


def test_typed_columns_json_and_a_query_source_in_postgresql(tmp_path: Path, pg_url):
    """Columns keep or get their declared types there as models type them: integer ids,
    a jsonb email, a timestamp, a text age that is sometimes not a number."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE people (id bigint, contact jsonb, seen timestamp, age text, vip boolean)"
        )
        conn.execute(
            "INSERT INTO people VALUES "
            """(1, '"Ann@Example.com"', '2024-01-01 10:00', '41', true), """
            """(2, '"ann@example.com"', '2024-02-01 10:00', 'n/a', NULL), """
            """(3, '{"a": 1}', NULL, '7', false)"""
        )
    dsn = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    (tmp_path / "headwater.yml").write_text(
        f"""
state: sqlite:///state.db
sources:
  db: {{type: sql, url: '{dsn}', query: "select * from people where id < 10"}}
models:
  folks:
    identity:
      keys: {{email: {{type: email}}}}
      sources:
        p: {{sql: select * from db, record_id: id, keys: {{email: contact}}, updated_at: seen}}
    columns:
      age: {{type: integer, survivorship: most_recent}}
      vip: {{type: boolean}}
      email: {{type: string}}
"""
    )
    report = resolve(load_project(tmp_path), "folks")
    assert report.error is None, report.error
    assert (report.records, report.persons, report.rejected) == (3, 2, 1)
    with psycopg.connect(pg_url) as conn:
        golden = conn.execute(
            "SELECT g.age, g.vip, g.email FROM folks_golden AS g JOIN folks_links AS l "
            "USING (person_id) WHERE l.record_id = '1'"
        ).fetchone()
        rejected = conn.execute("SELECT record_id, raw_value FROM folks_rejected").fetchall()
    # Record 2 is the most recent, but its age is not a number: the older 41 is kept.
    assert golden == (41, True, "ann@example.com")
    assert rejected == [("3", '{"a": 1}')]


def test_headwater_resolve_says_where_the_tables_are(tmp_path: Path, pg_url):
    from typer.testing import CliRunner

    from headwater.cli.app import app

    where = Postgres(tmp_path, pg_url, schema="identity")
    where.load()
    (tmp_path / "headwater.yml").write_text(
        where.text().replace("sqlite:///state.db", "sqlite:///s.db")
    )
    shown = CliRunner().invoke(app, ["resolve", "customers", "-p", str(tmp_path)])
    assert shown.exit_code == 0, shown.output
    assert "tables in the PostgreSQL database" in shown.output
    assert "identity.customers_golden" in shown.output


def test_a_sync_diff_split_over_two_connections_reads_the_golden_table_in_its_schema(
    tmp_path,
    pg_url,
    sandbox,  # noqa: F811
    monkeypatch,
    caplog,
):
    """The diff's second connection cannot see this session's view of the golden table in
    ``output_schema``: it reads the table through the model's SQL."""
    from headwater.syncs import diff as diff_module

    root = _pg_project(tmp_path, pg_url, sandbox.url, sandbox.key)
    assert run_sync(load_project(root), "people_to_braze").sent == 3
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE shop SET first_name = 'Zoey' WHERE order_id = 'o2'")
    monkeypatch.setattr(diff_module, "SPLIT_SAMPLE_PERCENT", 100)
    monkeypatch.setattr(diff_module, "SPLIT_MIN_SAMPLE", 1)
    halves = []
    copy_beside = SqlAlchemyEngine.copy_beside
    monkeypatch.setattr(
        SqlAlchemyEngine,
        "copy_beside",
        lambda self, *a: halves.append(a) or copy_beside(self, *a),
    )
    second = run_sync(load_project(root), "people_to_braze")
    assert (second.status, second.changed, second.sent) == ("succeeded", 1, 1), second.error
    assert len(halves) == 1 and "its half runs here" not in caplog.text
    assert {u.get("first_name") for u in sandbox.users()} == {"Ann", "Bob", "Zoey"}


def test_a_model_name_too_long_for_postgresql_tables_is_refused_before_anything_runs(
    tmp_path: Path, pg_url
):
    """PostgreSQL would cut ``<model>__hw_records__hw_next`` at 63 bytes, silently, and
    two of the run's tables could become one."""
    project = Postgres(tmp_path, pg_url).project()
    longest = "c" * 42
    project.models[longest] = project.models["customers"]
    assert resolve(project, longest).error is None
    too_long = "c" * 43
    project.models[too_long] = project.models.pop("customers")
    report = resolve(project, too_long)
    assert report.status == "failed" and "at most 42 bytes" in report.error


def test_an_audience_over_a_model_resolved_in_postgresql_sends_its_members_booleans(
    tmp_path: Path,
    pg_url,
    sandbox,  # noqa: F811
):
    from headwater.audiences.engine import run_audiences
    from headwater.config import parse_project

    where = Postgres(tmp_path, pg_url)
    where.load()
    text = where.text() + (
        "destinations:\n"
        f"  braze: {{url: {sandbox.url}, api_key: {sandbox.key}}}\n"
        "audiences:\n"
        "  shoppers:\n"
        "    model: customers\n"
        "    where: \"plan = 'silver' or city = 'Paris'\"\n"
        "    destination: braze\n"
        "    identifier: {external_id: person_id}\n"  # the identity model's key, by name
        "    splits: {a: 50, b: 50}\n"
    )
    project = parse_project(text, root=tmp_path)
    [report] = run_audiences(project)
    assert report.error is None, report.error
    with psycopg.connect(pg_url) as conn:
        members = {
            row[0]
            for row in conn.execute(
                "SELECT person_id FROM customers_golden WHERE plan = 'silver' OR city = 'Paris'"
            ).fetchall()
        }
    assert members  # the condition holds for someone
    sent = {
        user["external_id"]
        for user in sandbox.users()
        if any(user.get("custom_attributes", {}).get(f"AIQ_shoppers_{s}") for s in "ab")
    }
    assert sent == members
