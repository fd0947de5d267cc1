"""headwater.yml: every problem at once with its line, ${ENV} substitution, secrets kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headwater.config import load_project, parse_project
from headwater.errors import ConfigError

TEMPLATE = Path(__file__).resolve().parents[1] / "src/headwater/project_template"

GOOD = """\
destinations:
  braze: {url: "http://127.0.0.1:9090", api_key: "${HW_TEST_KEY}"}
sources:
  crm: {type: csv, path: data/contacts.csv}
models:
  contacts:
    sql: select * from crm
    primary_key: customer_id
    columns:
      customer_id: {type: string, required: true}
      email: {}
syncs:
  contacts:
    model: contacts
    destination: braze
    identifier: {external_id: customer_id}
    mapping: {email: email}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_project(text)
    return caught.value.problems


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_KEY", "sk-live-abc123")


def test_every_problem_is_reported_at_once_with_its_line_and_field() -> None:
    text = """\
destinations:
  braze:
    url: http://127.0.0.1:9090
    api_key: ${HW_TEST_KEY}
    batch_policy: sometimes
    colour: blue
sources:
  crm: {type: csv, path: data/contacts.csv}
  feed: {type: xml, path: feed.xml}
models:
  contacts:
    sql: select * from crm join loyalty using (customer_id)
    columns:
      customer_id: {type: string, required: true}
      points: {type: integr}
syncs:
  contacts:
    model: contacts
    destination: brze
    identifier: {external_id: customer_id}
    mapping: {email: email}
    schedule: {cron: "0 2 * * *", timezone: Mars/Olympus}
  orders:
    model: orders
    destination: braze
    identifier: {external_id: order_id}
    mapping: {x: y}
"""
    assert problems_of(text) == [
        "headwater.yml:5: destinations.braze.batch_policy: input should be 'combined' or 'per_kind'",
        "headwater.yml:6: destinations.braze.colour: unknown field (not allowed here)",
        "headwater.yml:9: sources.feed: unknown type; expected one of "
        "'csv', 'json', 'ndjson', 'parquet', 'sql'",
        "headwater.yml:11: models.contacts.primary_key: field required",
        "headwater.yml:12: models.contacts.sql: reads 'loyalty', which is not a source "
        "(sources: crm, feed)",
        "headwater.yml:15: models.contacts.columns.points.type: input should be 'string', "
        "'integer', 'float', 'boolean', 'time', 'array' or 'object'",
        "headwater.yml:19: syncs.contacts.destination: no destination named 'brze'",
        "headwater.yml:21: syncs.contacts.mapping.email: column 'email' is not declared "
        "in model 'contacts'",
        "headwater.yml:22: syncs.contacts.schedule.timezone: unknown time zone: 'Mars/Olympus'",
        "headwater.yml:24: syncs.orders.model: no model named 'orders'",
    ]


def test_a_valid_file_loads_with_defaults_resolved_under_the_project(tmp_path: Path) -> None:
    (tmp_path / "headwater.yml").write_text(GOOD)

    project = load_project(tmp_path)

    assert project.root == tmp_path.resolve()
    assert project.state_url == f"sqlite:///{tmp_path.resolve()}/.headwater/state.db"
    assert project.warehouse_path == f"{tmp_path.resolve()}/.headwater/warehouse.duckdb"
    sync = project.syncs["contacts"]
    assert (sync.type, sync.mode, sync.on_removed, sync.identifier.kind) == (
        "attributes",
        "upsert",
        "keep",
        "external_id",
    )
    assert project.destinations["braze"].batch_policy == "combined"


def test_env_variables_and_defaults_are_substituted_and_never_written_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HW_TEST_DIR", "exports")
    monkeypatch.delenv("HW_TEST_URL", raising=False)
    text = GOOD.replace('"http://127.0.0.1:9090"', '"${HW_TEST_URL:-http://127.0.0.1:9191}"')
    text = text.replace("data/contacts.csv", "'${HW_TEST_DIR}/contacts-$${DATE}.csv'")
    (tmp_path / "headwater.yml").write_text(text)

    project = load_project(tmp_path)

    assert project.destinations["braze"].url == "http://127.0.0.1:9191"
    assert project.destinations["braze"].api_key.get_secret_value() == "sk-live-abc123"
    assert project.sources["crm"].path == "exports/contacts-${DATE}.csv"
    assert (tmp_path / "headwater.yml").read_text() == text


def test_a_missing_env_variable_names_the_file_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HW_TEST_KEY")
    (tmp_path / "headwater.yml").write_text(GOOD)

    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path / "headwater.yml")

    assert caught.value.problems == [
        "headwater.yml:2: destinations.braze.api_key: environment variable HW_TEST_KEY is not set"
    ]


def test_secrets_never_show_in_reprs_dumps_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    project = parse_project(GOOD)
    assert "sk-live-abc123" not in repr(project)
    assert "sk-live-abc123" not in project.model_dump_json()
    assert "sk-live-abc123" not in str(project.destinations)

    monkeypatch.setenv("HW_TEST_DB", "postgresql://u:db-pass-999@host/db")
    broken = GOOD.replace(
        "  crm: {type: csv, path: data/contacts.csv}",
        "  crm: {type: csv, path: data/contacts.csv}\n"
        "  app: {type: sql, url: '${HW_TEST_DB}', table: t, query: 'select 1'}",
    ).replace('api_key: "${HW_TEST_KEY}"', 'api_key: ["${HW_TEST_KEY}"]')
    message = "\n".join(problems_of(broken))
    assert "sources.app" in message and "destinations.braze.api_key" in message
    assert "sk-live-abc123" not in message
    assert "db-pass-999" not in message


def test_cross_references_are_checked_primary_key_columns_and_model_sources() -> None:
    text = GOOD.replace("primary_key: customer_id", "primary_key: id").replace(
        "    sql: select * from crm\n", "    sql: select * from crm\n    source: crm\n"
    )
    text = text.replace("identifier: {external_id: customer_id}", "identifier: {braze_id: bid}")
    assert problems_of(text) == [
        "headwater.yml:8: models.contacts.source: source 'crm' is a file source; only sql "
        "sources run models (file models run in the warehouse)",
        "headwater.yml:9: models.contacts.primary_key: primary key 'id' is not declared in columns",
        "headwater.yml:17: syncs.contacts.identifier.braze_id: column 'bid' is not declared "
        "in model 'contacts'",
    ]


def test_event_and_purchase_syncs_need_their_blocks_and_declared_columns() -> None:
    text = (
        GOOD
        + """\
  rewards:
    model: contacts
    destination: braze
    type: events
    identifier: {user_alias: {name: email, label: crm}}
  orders:
    model: contacts
    destination: braze
    type: purchases
    identifier: {external_id: customer_id}
    purchase: {product_id: sku, price: email, currency: EUR, properties: {channel: chan}}
"""
    )
    assert problems_of(text) == [
        "headwater.yml:18: syncs.rewards: an events sync needs an event block "
        "(name, time, properties)",
        "headwater.yml:28: syncs.orders.purchase.product_id: column 'sku' is not declared "
        "in model 'contacts'",
        "headwater.yml:28: syncs.orders.purchase.properties.channel: column 'chan' is not "
        "declared in model 'contacts'",
    ]


def test_yaml_syntax_errors_and_duplicate_keys_point_at_their_line() -> None:
    assert problems_of("sources:\n  crm: {type: csv\nmodels: {}\n")[0].startswith(
        "headwater.yml:3: not valid YAML"
    )
    # The second `sources` wins, as in YAML; the duplicate and its consequence are both shown.
    assert problems_of(GOOD + "sources: {}\n") == [
        "headwater.yml:7: models.contacts.sql: reads 'crm', which is not a source",
        "headwater.yml:18: sources: duplicate key",
    ]


def test_a_missing_project_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="headwater init"):
        load_project(tmp_path)


def test_the_example_project_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAZE_API_KEY", "example-key")
    project = load_project(TEMPLATE)
    assert set(project.syncs) == {"contacts", "orders", "rewards"}
    assert [project.syncs[s].type for s in ("contacts", "orders", "rewards")] == [
        "attributes",
        "purchases",
        "events",
    ]


def test_passwords_in_database_urls_and_stream_secrets_are_hidden_from_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HW_TEST_STATE", "postgresql://hw:state-pass-1@db:5432/hw")
    monkeypatch.setenv("HW_TEST_EXTOLE", "extole-pass-2")
    project = parse_project(
        "state: ${HW_TEST_STATE}\n"
        "destinations:\n  braze: {url: 'http://127.0.0.1:9', api_key: k}\n"
        "streams:\n  extole:\n    preset: extole\n"
        "    auth: {type: basic, username: extole, password: '${HW_TEST_EXTOLE}'}\n"
    )

    shown = repr(project)
    assert "state-pass-1" not in shown and "extole-pass-2" not in shown
    assert "postgresql://hw:***@db:5432/hw" in shown
    # The values themselves are intact for the code that needs them.
    assert project.state_url.endswith("state-pass-1@db:5432/hw")
    assert project.streams["extole"].auth.password.get_secret_value() == "extole-pass-2"


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from(["csv", "sql", "braze", "select * from crm", "${HW_TEST_KEY}", "${NOPE}", ""]),
    st.text(max_size=8),
)
_keys = st.sampled_from(
    ["state", "sources", "models", "syncs", "destinations", "streams", "type", "path", "url",
     "sql", "primary_key", "columns", "model", "destination", "identifier", "mapping",
     "external_id", "crm", "contacts", "braze", "required", "event", "purchase", "schedule",
     "preset", "auth", "token", "events", "test_destination", "on_removed", "email"]
)  # fmt: skip
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_keys, children, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(document=st.dictionaries(_keys, _documents, max_size=5))
def test_any_document_either_loads_or_fails_with_located_problems(document: dict) -> None:
    import re

    import yaml

    from headwater.cli.loading import PROJECT_CHECKS

    try:
        parse_project(yaml.safe_dump(document), checks=PROJECT_CHECKS)
    except ConfigError as exc:
        assert exc.problems
        assert all(re.match(r"headwater\.yml(:\d+)?: ", p) for p in exc.problems), exc.problems


def test_the_gateway_section_sets_serve_and_its_problems_are_located(tmp_path: Path) -> None:
    from headwater.runtime.settings import ServeSettings

    (tmp_path / "headwater.yml").write_text(
        GOOD + "gateway:\n  dedupe_events: false\n  duplicate_window_hours: 2\n"
        "  delivery: {max_attempts: 3, linger_seconds: 0}\n"
    )
    settings = ServeSettings.from_project(load_project(tmp_path))
    assert (settings.gateway_dedupe_events, settings.gateway_dedupe_attributes) == (False, True)
    assert settings.seen_window_seconds == 7200
    assert (settings.delivery.max_attempts, settings.delivery.linger_seconds) == (3, 0)
    assert settings.delivery.lease_seconds == 30  # untouched fields keep their defaults
    assert ServeSettings.from_project(parse_project(GOOD)).delivery.max_attempts == 8

    assert problems_of(
        GOOD + "gateway:\n  destination: brze\n  duplicate_window_hours: 0\n"
        "  delivery: {max_attempts: many}\n"
    ) == [
        "headwater.yml:19: gateway.destination: no destination named 'brze'",
        "headwater.yml:20: gateway.duplicate_window_hours: input should be greater than 0",
        "headwater.yml:21: gateway.delivery.max_attempts: input should be a valid integer, "
        "unable to parse string as an integer",
    ]


def test_every_declared_name_is_an_identifier_reported_with_its_line() -> None:
    text = """\
destinations:
  braze/prod: {url: "http://127.0.0.1:9090", api_key: k}
  braze: {url: "http://127.0.0.1:9090", api_key: k}
sources:
  ../../../victim: {type: csv, path: a.csv}
  /tmp/elsewhere: {type: csv, path: a.csv}
  crm: {type: csv, path: a.csv}
models:
  my.model: {sql: select * from crm, primary_key: id, columns: {id: {}}}
  People: {sql: select * from crm, primary_key: id, columns: {id: {}}}
  people: {sql: select * from crm, primary_key: id, columns: {id: {}}}
syncs:
  "": {model: People, destination: braze, identifier: {external_id: id}, mapping: {a: id}}
  two words: {model: People, destination: braze, identifier: {external_id: id}, mapping: {a: id}}
  a-b: {model: People, destination: braze, identifier: {external_id: id}, mapping: {a: id}}
  a_b: {model: People, destination: braze, identifier: {external_id: id}, mapping: {a: id}}
streams:
  ..: {preset: extole, auth: {type: bearer, token: t}}
  x23456789012345678901234567890123456789012: {preset: extole, auth: {type: bearer, token: t}}
"""
    rule = "is not a valid name: use letters, digits, _ and -, start with a letter, at most 40 characters"
    assert problems_of(text) == [
        f"headwater.yml:2: destinations.braze/prod: 'braze/prod' {rule}",
        f"headwater.yml:5: sources.../../../victim: '../../../victim' {rule}",
        f"headwater.yml:6: sources./tmp/elsewhere: '/tmp/elsewhere' {rule}",
        f"headwater.yml:9: models.my.model: 'my.model' {rule}",
        "headwater.yml:11: models.people: 'people' and 'People' would share tables and caches; "
        "names must differ in more than case or - and _",
        f"headwater.yml:13: syncs.: '' {rule}",
        f"headwater.yml:14: syncs.two words: 'two words' {rule}",
        "headwater.yml:16: syncs.a_b: 'a_b' and 'a-b' would share tables and caches; "
        "names must differ in more than case or - and _",
        f"headwater.yml:18: streams...: '..' {rule}",
        "headwater.yml:19: streams.x23456789012345678901234567890123456789012: "
        f"'x23456789012345678901234567890123456789012' {rule}",
    ]


def test_a_warehouse_that_is_not_duckdb_is_refused_without_showing_its_password() -> None:
    (problem,) = problems_of("warehouse: postgresql://wh:pa/ss@db.example.com/wh\n")
    assert problem.startswith(
        "headwater.yml:1: warehouse: only duckdb:/// warehouses are supported, "
        "got 'postgresql://wh:***@db.example.com/wh'"
    )
    assert "pa/ss" not in problem


@pytest.mark.parametrize(
    "limit",
    [
        "{limit: 10, window_seconds: .inf}",
        "{limit: 10, window_seconds: 1e9}",
        "{limit: 1000000000000, window_seconds: 3}",
        "{limit: 0, window_seconds: 3}",
    ],
)
def test_rate_limits_a_window_cannot_hold_are_refused_at_their_line(limit: str) -> None:
    """An infinite window once passed and left every request waiting forever."""
    text = (
        "destinations:\n  braze:\n    url: http://127.0.0.1:9\n    api_key: k\n"
        f"    rate_limits:\n      users.track: {limit}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_project(text)
    (problem,) = caught.value.problems
    assert problem.startswith("headwater.yml:6: destinations.braze.rate_limits.users.track.")
