"""``headwater validate`` on schedules: each problem at its line, those that need the whole
file (``after:`` naming an unknown job, ``after:`` cycles) included."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from headwater.cli.app import app
from headwater.cli.loading import PROJECT_CHECKS
from headwater.config import parse_project
from headwater.errors import ConfigError

HEAD = """\
destinations:
  braze: {url: "http://127.0.0.1:9", api_key: k}
sources:
  crm: {type: csv, path: data/contacts.csv}
models:
  contacts:
    sql: select * from crm
    primary_key: id
    columns: {id: {type: string}}
syncs:
"""


def sync(name: str, schedule: str) -> str:
    return (
        f"  {name}:\n    model: contacts\n    destination: braze\n"
        f"    identifier: {{external_id: id}}\n    mapping: {{a: id}}\n    schedule:\n{schedule}"
    )


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_project(text, checks=PROJECT_CHECKS)
    return caught.value.problems


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_schedules_that_cannot_run_are_named_at_their_line():
    text = HEAD + "".join(
        [
            sync("a", '      cron: "61 * * * *"\n'),
            sync("b", "      cron: '0 2 * * *'\n      timezone: Europe/Atlantis\n"),
            sync("c", "      every: 15 minutes\n"),
            sync("d", "      every: 1m\n      cron: '* * * * *'\n"),
            sync("e", "      after: nobody\n"),
            sync("f", "      after: f\n"),
            sync("g", "      cron: '0 0 31 2 *'\n"),
        ]
    )
    assert problems(text) == [
        f"headwater.yml:{line_of(text, '61 * * * *')}: syncs.a.schedule.cron: "
        "not a valid cron expression: '61 * * * *'",
        f"headwater.yml:{line_of(text, 'Atlantis')}: syncs.b.schedule.timezone: "
        "unknown time zone: 'Europe/Atlantis'",
        f"headwater.yml:{line_of(text, '15 minutes')}: syncs.c.schedule.every: "
        "not an interval: '15 minutes'; write e.g. 30s, 15m, 2h or 1d",
        f"headwater.yml:{line_of(text, 'every: 1m') - 1}: syncs.d.schedule: "
        "a schedule needs exactly one of every, cron or after",
        f"headwater.yml:{line_of(text, 'nobody')}: syncs.e.schedule.after: "
        "no job named 'nobody' to run after (jobs: a, b, c, d, e, f, g)",
        f"headwater.yml:{line_of(text, 'after: f')}: syncs.f.schedule.after: "
        "a job cannot run after itself",
        f"headwater.yml:{line_of(text, '31 2')}: syncs.g.schedule.cron: "
        "cron expression '0 0 31 2 *' matches no date",
    ]


def test_an_after_cycle_is_reported_once_at_the_after_that_starts_it():
    text = (
        HEAD
        + sync("a", "      after: c\n")
        + sync("b", "      after: a\n")
        + sync("c", "      after: b\n")
    )
    assert problems(text) == [
        f"headwater.yml:{line_of(text, 'after: c')}: syncs.a.schedule.after: "
        "after: makes a cycle that would never run: a -> c -> b -> a"
    ]


def test_every_kind_of_schedule_loads():
    text = HEAD + "".join(
        [
            sync("a", "      every: 15m\n      start: 2026-01-01\n      end: 2026-12-31 18:00\n"),
            sync("b", "      cron: '0 2 * * *'\n      timezone: Europe/Paris\n"),
            sync("c", "      after: b\n"),
        ]
    )
    project = parse_project(text, checks=PROJECT_CHECKS)
    assert project.syncs["a"].schedule.every_seconds == 900
    assert project.syncs["c"].schedule.describe() == "after b"


def test_validate_exits_1_naming_the_line(tmp_path: Path):
    text = HEAD + sync("a", "      after: nobody\n")
    (tmp_path / "headwater.yml").write_text(text)
    result = CliRunner().invoke(app, ["validate", "-p", str(tmp_path)])
    assert result.exit_code == 1
    assert f"headwater.yml:{line_of(text, 'nobody')}: syncs.a.schedule.after" in result.output


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("      every: 99999999999d\n", "longer than a year"),
        ("      cron: '* * * * * * *'\n", "needs five fields"),
        ("      cron: '*/5 * * * * 30'\n", "needs five fields"),
        ("      every: 15m\n      start: '9999-12-31T00:00:00Z'\n", "start must fall between"),
        ("      every: 15m\n      start: '0001-01-01T00:00:00+14:00'\n", "start must fall"),
        ("      every: 15m\n      end: '0001-01-01T00:00:00+14:00'\n", "end must fall between"),
    ],
)
def test_schedules_no_fire_time_can_hold_are_refused(schedule: str, message: str):
    """Extreme intervals and dates once crashed `headwater schedules` with OverflowError;
    a seconds field made a cron fire every second."""
    (problem,) = problems(HEAD + sync("a", schedule))
    assert problem.startswith("headwater.yml:") and message in problem


def test_cron_aliases_and_a_year_long_interval_load():
    text = HEAD + sync("a", "      cron: '@daily'\n") + sync("b", "      every: 366d\n")
    project = parse_project(text, checks=PROJECT_CHECKS)
    assert project.syncs["b"].schedule.every_seconds == 366 * 86400
