"""The audiences section: shares, names, templates and references, each at its line."""

from __future__ import annotations

import textwrap

import pytest

from headwater.config import parse_project
from headwater.errors import ConfigError

BASE = """
destinations:
  braze: {url: "http://127.0.0.1:1", api_key: k}
sources:
  crm: {type: csv, path: people.csv}
models:
  people:
    sql: select * from crm
    primary_key: person_id
    columns:
      person_id: {type: string}
      ltv: {type: integer}
      email: {type: string}
"""


def parse(audiences: str, extra: str = ""):
    return parse_project(
        BASE + extra + "audiences:\n" + textwrap.indent(textwrap.dedent(audiences), "  ")
    )


def problems(audiences: str, extra: str = "") -> str:
    with pytest.raises(ConfigError) as caught:
        parse(audiences, extra)
    return "\n".join(caught.value.problems)


def test_a_full_audience_parses_with_its_defaults():
    project = parse(
        """
        vip:
          model: people
          where: "ltv >= 1000"
          destination: braze
          splits: {a: 45, b: 45.5}
          holdout: 9.5
          on_exit: false
        """
    )
    vip = project.audiences["vip"]
    assert vip.groups() == {"a": 4500, "b": 4550, "holdout": 950}
    assert vip.on_exit == "false" and vip.salt is None
    assert project.audience_defaults.attribute == "AIQ_{audience}_{split}"
    plain = parse("all_buyers: {model: people, where: 'ltv > 0', destination: braze, holdout: 5}")
    assert plain.audiences["all_buyers"].groups() == {"all": 9500, "holdout": 500}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("splits: {a: 50, b: 40}", "add up to 90 %, not 100 %"),
        ("splits: {a: 50, b: 50}\n  holdout: 10", "add up to 110 %"),
        ("splits: {a: 0, b: 100}", "above 0 %"),
        ("splits: {" + ", ".join(f"s{i}: 0.5" for i in range(200)) + "}", "at most 100"),
        ("splits: {a: 33.333, b: 66.667}", "finer than a slot"),
        ("splits: {holdout: 100}", "the holdout's own"),
        ("splits: {'a b': 100}", "letters, digits"),
        ("holdout: 100", "less than 100"),
        ("attribute: 'AIQ_{name}'", "unknown placeholder {name}"),
        ("on_exit: delete", "on_exit"),
        ("where: 'ltv >= 1; DROP TABLE x'", "not one SQL condition"),
        ("where: 'ltv >= (SELECT 1)'", "subqueries"),
        ("where: 'sum(ltv) > 3'", "aggregates"),
        ("where: 'spend > 3'", "column 'spend' is not declared"),
        ("identifier: {email: mail}", "column 'mail' is not declared"),
        ("model: nobody", "no model named 'nobody'"),
        ("destination: elsewhere", "no destination named 'elsewhere'"),
        ("splits: {a: 50, b: 50}\n  attribute: 'AIQ_{audience}'", "also audience 'vip' split"),
    ],
)
def test_mistakes_are_named_at_their_line(spec, message):
    base = {"model": "people", "where": "'ltv >= 1000'", "destination": "braze"}
    lines = [f"  {k}: {v}" for k, v in base.items() if not spec.startswith(k + ":")]
    found = problems("vip:\n" + "\n".join(lines) + "\n  " + spec + "\n")
    assert message in found, found
    assert "headwater.yml:" in found


def test_two_audiences_cannot_write_one_attribute():
    found = problems(
        """
        vip: {model: people, where: 'ltv > 1', destination: braze}
        big: {model: people, where: 'ltv > 2', destination: braze, attribute: AIQ_vip_all}
        """
    )
    assert "attribute 'AIQ_vip_all' is also audience 'vip'" in found
