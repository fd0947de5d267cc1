"""``identity:`` in headwater.yml: what it accepts, and every mistake reported at its line."""

from __future__ import annotations

import pytest

from headwater.config import parse_project
from headwater.errors import ConfigError

BASE = """
sources:
  crm: {type: csv, path: crm.csv}
models:
  people:
    identity:
      keys: {email: {type: email}, crm_id: {type: string, max_per_person: 1}}
      sources:
        crm: {sql: select * from crm, record_id: id, keys: {email: email, crm_id: id}}
    columns:
      first_name: {type: string, survivorship: most_recent}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_project(text)
    return caught.value.problems


def test_an_identity_model_needs_no_sql_and_is_keyed_by_person_id():
    model = parse_project(BASE).models["people"]
    assert model.sql is None and model.primary_key == "person_id"
    assert list(model.columns) == ["person_id", "first_name"]
    assert model.identity.max_records_per_value == 1000


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("keys: {email: email, crm_id: id}}", "undeclared key(s) phone"),
        ("crm: {sql: select * from crm,", "takes its rows from identity.sources"),
        ("{type: email}", "default_region applies to phone keys only"),
        ("max_per_person: 1}", "greater than 0"),
        ("select * from crm,", "reads 'nowhere', which is not a source"),
    ],
)
def test_mistakes_are_reported_with_their_line(change, expected):
    replacements = {
        "keys: {email: email, crm_id: id}}": "keys: {email: email, crm_id: id, phone: p}}",
        "crm: {sql: select * from crm,": "crm: {sql: select * from crm,",
        "{type: email}": "{type: email, default_region: US}",
        "max_per_person: 1}": "max_per_person: 0}",
        "select * from crm,": "select * from nowhere,",
    }
    text = BASE.replace(change, replacements[change])
    if "takes its rows" in expected:
        text = text.replace("    identity:\n", "    sql: select * from crm\n    identity:\n")
    found = problems(text)
    assert any(expected in p and "headwater.yml:" in p for p in found), found


def test_survivorship_and_schedule_belong_to_identity_models_only():
    text = """
sources: {crm: {type: csv, path: crm.csv}}
models:
  m:
    sql: select * from crm
    primary_key: id
    columns: {id: {type: string, survivorship: most_recent}}
"""
    assert any("identity models only" in p for p in problems(text))


def test_a_sync_may_use_person_id_without_declaring_it():
    text = (
        BASE
        + """
destinations: {braze: {url: "http://127.0.0.1:9", api_key: k}}
syncs:
  people: {model: people, destination: braze, identifier: {external_id: person_id}, mapping: {first_name: first_name}}
"""
    )
    assert parse_project(text).syncs["people"].model == "people"


def test_golden_columns_may_not_take_the_resolvers_own_names():
    text = BASE.replace("first_name: {type: string", "_source: {type: string")
    assert any("keeps for itself" in p for p in problems(text))


def test_memory_limit_takes_duckdb_sizes_and_is_not_part_of_the_result():
    from headwater.identity.memory import fingerprint

    plain = parse_project(BASE).models["people"]
    text = BASE.replace("    identity:\n", "    identity:\n      memory_limit: 3GB\n")
    limited = parse_project(text).models["people"]
    assert limited.identity.memory_limit == "3GB"
    assert fingerprint(limited) == fingerprint(plain)  # no full run for changing it
    found = problems(text.replace("3GB", "lots"))
    assert any("memory_limit" in p for p in found), found


def test_a_new_schedule_or_description_is_not_part_of_the_result():
    from headwater.identity.memory import fingerprint

    plain = parse_project(BASE).models["people"]
    text = BASE.replace(
        "    columns:\n", "    schedule: {every: 1h}\n    description: people\n    columns:\n"
    )
    scheduled = parse_project(text).models["people"]
    assert scheduled.schedule is not None
    assert fingerprint(scheduled) == fingerprint(plain)  # the next run stays incremental
    retyped = parse_project(BASE.replace("most_recent", "most_frequent")).models["people"]
    assert fingerprint(retyped) != fingerprint(plain)  # what decides the result does count
