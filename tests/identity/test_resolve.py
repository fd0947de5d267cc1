"""Identity resolution end to end on a real DuckDB warehouse and a real SQLite state store."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from headwater.config import parse_project
from headwater.errors import ConfigError, FatalError
from headwater.identity import materialize_any, resolve
from headwater.models import materialize_model
from headwater.state import runs
from headwater.state.db import open_state

PROJECT = """
state: sqlite:///state.db
warehouse: duckdb:///warehouse.duckdb
sources:
  crm_contacts: {type: csv, path: crm.csv}
  shop_orders: {type: csv, path: shop.csv}
models:
  customers:
    identity:
      keys:
        crm_id: {type: string, max_per_person: 1}
        email: {type: email, max_records_per_value: 3}
        phone: {type: phone, default_region: US}
      sources:
        crm:
          sql: select * from crm_contacts
          record_id: id
          keys: {crm_id: id, email: email, phone: phone}
          updated_at: updated_at
          priority: 1
        shop:
          sql: select * from shop_orders
          record_id: order_id
          keys: {email: customer_email, phone: phone}
          updated_at: ordered_at
          priority: 2
    columns:
      first_name: {type: string, survivorship: source_priority}
      city: {type: string, survivorship: most_recent}
      plan: {type: string, survivorship: most_frequent}
      email: {type: string}
"""

CRM = """id,email,phone,first_name,city,plan,updated_at
1, Ann@Example.com ,+1 415 555 0101,Ann,Paris,gold,2024-01-01
2,bob@example.com,(415) 555-0102,Bob,Lyon,,2024-01-02
3,not-an-email,12,Carl,Nice,,2024-01-03
4,fam@example.com,,Dan,Rome,,2024-01-04
5,fam@example.com,,Eve,Oslo,,2024-01-05
"""

SHOP = """order_id,customer_email,phone,first_name,city,plan,ordered_at
o1,ann@example.com,,Annie,Berlin,silver,2024-02-01
o2,,4155550102,Robert,,basic,2024-02-02
o3,ANN@example.com,,,Madrid,silver,2024-01-15
o4,test@example.com,+1 415 555 0103,T,,,2024-02-01
o5,test@example.com,,T,,,2024-02-01
o6,test@example.com,,T,,,2024-02-01
o7,test@example.com,,T,,,2024-02-01
o8,carl@example.com,call me,Carl,,,2024-02-01
"""


def make_project(root: Path, crm: str = CRM, shop: str = SHOP):
    (root / "crm.csv").write_text(crm)
    (root / "shop.csv").write_text(shop)
    return parse_project(PROJECT, root=root)


def table(root: Path, name: str, order: str = "") -> list[tuple]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {name} {order}").fetchall()
    finally:
        con.close()


def persons_of(root: Path) -> dict[str, str]:
    """(source:record_id) -> person_id."""
    return {f"{s}:{r}": p for p, s, r, _ in table(root, "customers_links")}


def test_records_sharing_any_key_are_one_person_and_bad_values_link_nobody(tmp_path: Path):
    project = make_project(tmp_path)
    report = resolve(project, "customers")
    assert report.error is None and report.status == "partial"  # bad values were rejected
    links = persons_of(tmp_path)
    # Ann: crm 1 and orders o1, o3 by email (trimmed, lower-cased).
    assert links["crm:1"] == links["shop:o1"] == links["shop:o3"]
    # Bob: crm 2 and o2 by phone, written two ways, both E.164 +14155550102.
    assert links["crm:2"] == links["shop:o2"]
    # Carl's bad email and phone link nobody, and say why.
    assert len({links["crm:3"], links["shop:o8"]}) == 2
    rejected = {(s, r, k): reason for s, r, k, _, reason in table(tmp_path, "customers_rejected")}
    assert rejected[("crm", "3", "email")].startswith("not a valid email")
    assert rejected[("crm", "3", "phone")].startswith("not a valid phone number")
    assert rejected[("shop", "o8", "phone")].startswith("not a phone number")
    assert report.rejected == 3
    assert report.records == 13
    assert report.persons == len(set(links.values())) == len(table(tmp_path, "customers_persons"))


def test_limit_rules_refuse_shared_values_and_write_them_down(tmp_path: Path):
    project = make_project(tmp_path)
    report = resolve(project, "customers")
    links = persons_of(tmp_path)
    refused = {
        (k, v): (rule, reason) for k, v, _, rule, reason, *_ in table(tmp_path, "customers_refused")
    }
    # test@example.com is on 4 orders, over the email limit of 3: it merges nobody ...
    assert refused[("email", "test@example.com")][0] == "max_records_per_value"
    assert len({links[f"shop:o{i}"] for i in (5, 6, 7)}) == 3
    # ... and Dan and Eve share an email but are two CRM ids: not merged either.
    rule, reason = refused[("email", "fam@example.com")]
    assert rule == "max_per_person" and "crm_id" in reason
    assert links["crm:4"] != links["crm:5"]
    assert report.refused == 2
    # The run's row errors name them too.
    state = open_state(project.state_url)
    try:
        errors = runs.row_errors(state, report.run_id)
    finally:
        state.dispose()
    assert any("test@example.com" in str(e.row_key) for e in errors)


def test_a_chain_breaking_max_per_person_is_cut_at_its_most_shared_value(tmp_path: Path):
    crm = (
        "id,email,phone,first_name,city,plan,updated_at\n1,a@x.com,,A,,,\n2,,+1 415 555 0109,B,,,\n"
    )
    # a@x.com links crm 1 to o1; the call-centre phone links o1..o3 to crm 2.
    shop = "order_id,customer_email,phone,first_name,city,plan,ordered_at\n"
    shop += "o1,a@x.com,+1 415 555 0109,,,,\no2,,+1 415 555 0109,,,,\n"
    project = make_project(tmp_path, crm, shop)
    resolve(project, "customers")
    links = persons_of(tmp_path)
    assert links["crm:1"] != links["crm:2"]
    refused = table(tmp_path, "customers_refused")
    assert [(k, v, rule) for k, v, _, rule, *_ in refused] == [
        ("phone", "+14155550109", "max_per_person")
    ]


def test_golden_record_follows_each_columns_survivorship(tmp_path: Path):
    project = make_project(tmp_path)
    resolve(project, "customers")
    links = persons_of(tmp_path)
    golden = {row[0]: row for row in table(tmp_path, "customers_golden")}
    ann = golden[links["crm:1"]]
    # first_name: source priority (crm wins over the shop's later "Annie").
    # city: most recent non-null (o1, Feb 1). plan: most frequent (silver twice).
    # email: the key's cleaned value.
    assert ann[1:] == ("Ann", "Berlin", "silver", "ann@example.com")
    bob = golden[links["crm:2"]]
    assert bob[1:] == ("Bob", "Lyon", "basic", "bob@example.com")


def test_person_ids_are_stable_a_joiner_keeps_the_id_and_a_merge_keeps_the_older(tmp_path: Path):
    project = make_project(tmp_path)
    resolve(project, "customers")
    first = persons_of(tmp_path)
    again = resolve(project, "customers")
    assert persons_of(tmp_path) == first and again.new_persons == 0 and again.merges == 0
    # A new order joins Ann: it gets Ann's id, and nobody else's changes.
    project = make_project(tmp_path, shop=SHOP + "o9,,+14155550101,,,,2024-03-01\n")
    third = resolve(project, "customers")
    links = persons_of(tmp_path)
    assert links.pop("shop:o9") == first["crm:1"]
    assert links == first and third.new_persons == 0 and third.merges == 0


def test_two_persons_joined_by_a_new_record_merge_into_the_older_one(tmp_path: Path):
    project = make_project(tmp_path)
    resolve(project, "customers")
    first = persons_of(tmp_path)
    ann, carl = first["crm:1"], first["shop:o8"]
    shop = SHOP + "o10,carl@example.com,+1 415 555 0101,,,,2024-03-01\n"
    project = make_project(tmp_path, shop=shop)
    report = resolve(project, "customers")
    links = persons_of(tmp_path)
    older = min(ann, carl, key=lambda p: int(p[2:]))
    assert links["shop:o8"] == links["crm:1"] == links["shop:o10"] == older
    assert report.merges == 1
    survivor, merged, _, run_id = table(tmp_path, "customers_merges")[0]
    assert (survivor, merged, run_id) == (older, ({ann, carl} - {older}).pop(), report.run_id)


def test_the_run_is_recorded_and_materialize_any_gives_the_golden_records(tmp_path: Path):
    project = make_project(tmp_path)
    result = materialize_any(project, "customers")
    try:
        assert result.table == "customers_golden" and result.primary_key == "person_id"
        assert list(result.columns) == ["person_id", "first_name", "city", "plan", "email"]
        assert (
            result.engine.fetch_all("SELECT count(*) FROM customers_golden")[0][0]
            == result.row_count
        )
    finally:
        result.engine.close()
    state = open_state(project.state_url)
    try:
        (run,) = runs.list_runs(state)
    finally:
        state.dispose()
    assert (run.sync, run.kind, run.status) == ("customers", "identity", "partial")
    assert run.counts["added"] == result.row_count


def test_materialize_any_is_materialize_model_for_other_models(tmp_path: Path):
    (tmp_path / "c.csv").write_text("id,name\n1,a\n2,b\n")
    project = parse_project(
        "warehouse: duckdb:///w.duckdb\nsources: {c: {type: csv, path: c.csv}}\n"
        "models:\n  m: {sql: select * from c, primary_key: id, columns: {id: {type: string}, name: {}}}\n",
        root=tmp_path,
    )
    result = materialize_any(project, "m")
    try:
        assert (result.table, result.row_count) == ("hw_model_m", 2)
    finally:
        result.engine.close()
    with pytest.raises(ConfigError, match="identity model"):
        materialize_model(make_project(tmp_path), "customers")


def test_a_broken_source_fails_the_run_with_its_reason_and_publishes_nothing(tmp_path: Path):
    project = make_project(tmp_path)
    project.models["customers"].identity.sources[
        "shop"
    ].sql = "select * from shop_orders where nope"
    report = resolve(project, "customers")
    assert report.status == "failed" and "shop" in report.error
    assert not (tmp_path / "warehouse.duckdb").exists() or not _has(tmp_path, "customers_golden")


def _has(root: Path, name: str) -> bool:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return bool(
            con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]
            ).fetchall()[0][0]
        )
    finally:
        con.close()


def test_a_stop_requested_publishes_nothing_and_records_an_interrupted_run(tmp_path: Path):
    import threading

    stop = threading.Event()
    stop.set()
    report = resolve(make_project(tmp_path), "customers", stop=stop)
    assert report.status == "interrupted"


def test_resolve_refuses_a_model_that_is_not_an_identity_model(tmp_path: Path):
    project = make_project(tmp_path)
    with pytest.raises(ConfigError):
        resolve(project, "nope")


def test_another_model_reads_the_golden_records_as_last_resolved(tmp_path: Path):
    text = (
        PROJECT
        + """
  annes:
    sql: select person_id, first_name from customers where first_name like 'Ann%'
    primary_key: person_id
    columns: {person_id: {type: string}, first_name: {type: string}}
"""
    )
    (tmp_path / "crm.csv").write_text(CRM)
    (tmp_path / "shop.csv").write_text(SHOP)
    project = parse_project(text, root=tmp_path)
    with pytest.raises(FatalError, match="headwater resolve customers"):
        materialize_model(project, "annes").engine.close()
    resolve(project, "customers")
    result = materialize_model(project, "annes")
    try:
        assert result.engine.fetch_all("SELECT first_name FROM hw_model_annes") == [("Ann",)]
    finally:
        result.engine.close()


def test_hostile_records_are_rejected_by_field_and_the_rest_resolved(tmp_path: Path):
    import json

    rows = [
        {"id": {"a": 1, "b": [1, 2]}, "email": "x" * 5000 + "@example.com", "phone": 4155550123},
        {"id": 2, "email": ["a@b.com"], "phone": "+" + "9" * 40, "when": -1e308},
        {"id": None, "email": "a@b.com"},
        {"id": "3", "email": "A@B.COM", "phone": "+1 415 555 0123 ext. 9", "when": "99999-01-01"},
        *({"id": f"f{i}", "email": f"bad{i}", "phone": f"call {i}"} for i in range(300)),
    ]
    (tmp_path / "a.ndjson").write_text("\n".join(json.dumps(r) for r in rows))
    project = parse_project(
        """
warehouse: duckdb:///w.duckdb
state: sqlite:///s.db
sources: {a: {type: ndjson, path: a.ndjson}}
models:
  p:
    identity:
      keys: {email: {type: email}, phone: {type: phone, default_region: US}}
      sources:
        a: {sql: select * from a, record_id: id, keys: {email: email, phone: phone}, updated_at: when}
    columns: {email: {type: string}}
""",
        root=tmp_path,
    )
    report = resolve(project, "p")
    assert report.status == "partial" and report.records == 303
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    links = dict(con.execute("SELECT record_id, person_id FROM p_links").fetchall())
    reasons = con.execute("SELECT record_id, key, reason FROM p_rejected").fetchall()
    con.close()
    # The object id is its JSON text; the numeric phone and the one with an extension agree.
    assert links['{"a":1,"b":[1,2]}'] == links["3"]
    assert ("f7", "email", "not a valid email: An email address must have an @-sign.") in reasons
    assert any(r[0] == "2" and r[1] == "phone" for r in reasons)
    assert (
        report.rejected == 1 + 2 + 1 + 600
    )  # the missing id, record 2's two, the long email, the flood
    assert all(len(e.reason) < 400 for e in report.errors)


def test_a_source_in_postgresql_is_read_into_the_warehouse_and_resolved(tmp_path: Path, pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE app_users (user_id text, mobile text, email text)")
        conn.execute(
            "INSERT INTO app_users VALUES ('u1', '+1 415 555 0101', NULL), "
            "('u2', NULL, 'BOB@example.com'), ('u3', '12', 'nobody@example.com')"
        )
    (tmp_path / "crm.csv").write_text(CRM)
    (tmp_path / "shop.csv").write_text(SHOP)
    url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    text = PROJECT.replace(
        "  shop_orders: {type: csv, path: shop.csv}\n",
        f"  shop_orders: {{type: csv, path: shop.csv}}\n  app_db: {{type: sql, url: '{url}', table: app_users}}\n",
    ).replace(
        "    columns:\n      first_name",
        "        app: {sql: select * from app_db, record_id: user_id, keys: {phone: mobile, email: email}}\n"
        "    columns:\n      first_name",
    )
    report = resolve(parse_project(text, root=tmp_path), "customers")
    assert report.error is None, report.error
    links = persons_of(tmp_path)
    assert links["app:u1"] == links["crm:1"] and links["app:u2"] == links["crm:2"]


def test_the_example_project_resolves_its_crm_and_newsletter_into_people(tmp_path, monkeypatch):
    import shutil

    from headwater.config import load_project

    template = Path(__file__).resolve().parents[2] / "src/headwater/project_template"
    shutil.copytree(template / "data", tmp_path / "data")
    shutil.copy(template / "headwater.yml", tmp_path / "headwater.yml")
    monkeypatch.setenv("BRAZE_API_KEY", "example-key")
    report = resolve(load_project(tmp_path), "people")
    # 1,999 CRM rows with an id (C00318 twice: one record) and 800 sign-ups; 500 join by
    # email, 150 by customer id; test@example.com is refused; 3 values rejected.
    assert (report.records, report.persons, report.refused, report.rejected) == (2_799, 2_148, 1, 3)


def test_memory_limit_holds_for_the_run_and_the_engine_gets_its_own_back(tmp_path: Path):
    from headwater.models.model import open_warehouse

    (tmp_path / "crm.csv").write_text(CRM)
    (tmp_path / "shop.csv").write_text(SHOP)
    text = PROJECT.replace("    identity:\n", "    identity:\n      memory_limit: 64MB\n")
    project = parse_project(text, root=tmp_path)
    engine = open_warehouse(project)
    setting = "SELECT current_setting('memory_limit')"
    try:
        before = engine.fetch_all(setting)[0][0]
        seen = []
        report = resolve(
            project,
            "customers",
            engine=engine,
            progress=lambda step: seen.append(engine.fetch_all(setting)[0][0]),
        )
        assert report.error is None and report.persons == 10
        assert set(seen) == {"61.0 MiB"}  # DuckDB's spelling of 64MB
        assert engine.fetch_all(setting)[0][0] == before
    finally:
        engine.close()
