"""``headwater init`` and ``headwater validate``, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from headwater.cli import project as project_cli


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    project_cli.register(app)
    return app


runner = CliRunner()


def test_init_copies_the_example_project_and_prints_next_steps(
    cli: typer.Typer, tmp_path: Path
) -> None:
    target = tmp_path / "shop"

    result = runner.invoke(cli, ["init", str(target)])

    assert result.exit_code == 0, result.output
    assert "Next steps" in result.output and "headwater sync contacts" in result.output
    assert (target / "headwater.yml").is_file()
    assert sorted(p.name for p in (target / "data").iterdir()) == [
        "contacts.csv",
        "newsletter.csv",
        "orders.csv",
        "rewards.ndjson",
    ]
    assert not (target / "generate.py").exists()


def test_init_refuses_to_overwrite_an_existing_project(cli: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "headwater.yml").write_text("# mine\n")

    result = runner.invoke(cli, ["init", str(tmp_path)])

    assert result.exit_code == 1
    assert "already exists" in result.output
    assert (tmp_path / "headwater.yml").read_text() == "# mine\n"


def test_validate_summarises_a_valid_project(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner.invoke(cli, ["init", str(tmp_path / "shop")])
    monkeypatch.setenv("BRAZE_API_KEY", "sk-example-secret")

    result = runner.invoke(cli, ["validate", "--project", str(tmp_path / "shop")])

    assert result.exit_code == 0, result.output
    assert "is valid" in result.output
    for name in ("crm", "shop_orders", "extole_rewards", "purchases", "events", "attributes"):
        assert name in result.output
    assert "sk-example-secret" not in result.output


def test_validate_prints_every_problem_with_file_line_and_field_and_exits_1(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRAZE_API_KEY", raising=False)
    runner.invoke(cli, ["init", str(tmp_path)])
    config = tmp_path / "headwater.yml"
    config.write_text(
        config.read_text()
        .replace("primary_key: order_id", "primary_key: order_number")
        .replace("destination: braze\n    type: events", "destination: brazil\n    type: events")
    )
    lines = config.read_text().splitlines()
    line_of = {
        key: next(i for i, line in enumerate(lines, 1) if key in line)
        for key in ("api_key:", "order_number", "brazil")
    }

    result = runner.invoke(cli, ["validate", "-p", str(tmp_path)])

    assert result.exit_code == 1
    assert "3 problems" in result.output
    assert (
        f"headwater.yml:{line_of['api_key:']}: destinations.braze.api_key: "
        "environment variable BRAZE_API_KEY is not set" in result.output
    )
    assert (
        f"headwater.yml:{line_of['order_number']}: models.orders.primary_key: "
        "primary key 'order_number' is not declared in columns" in result.output
    )
    assert (
        f"headwater.yml:{line_of['brazil']}: syncs.rewards.destination: "
        "no destination named 'brazil'" in result.output
    )


def test_the_headwater_command_runs_init_then_validate(tmp_path: Path) -> None:
    env = {**os.environ, "BRAZE_API_KEY": "k"}

    def headwater(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "headwater", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    assert headwater("init", "shop").returncode == 0
    checked = headwater("validate", "--project", "shop")
    assert checked.returncode == 0, checked.stderr
    assert "is valid" in checked.stdout


def test_validate_warns_about_local_sources_with_no_files_yet(
    cli: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner.invoke(cli, ["init", str(tmp_path)])
    (tmp_path / "data" / "orders.csv").unlink()
    monkeypatch.setenv("BRAZE_API_KEY", "k")

    result = runner.invoke(cli, ["validate", "-p", str(tmp_path)])

    assert result.exit_code == 0
    assert "source 'shop_orders': no file matches data/orders.csv (yet)" in result.output


EVERY_SECTION_WRONG = """\
destinations:
  braze:
    url: http://127.0.0.1:9
    api_key: k
    rate_limits:
      users.track: {limit: 10, window_seconds: 1}
      users.alias.new: {limit: 10, window_seconds: 1}
sources:
  crm: {type: csv, path: c.csv}
models:
  contacts: {sql: select * from crm, primary_key: id, columns: {id: {}, email: {}}}
syncs:
  contacts:
    model: contacts
    destination: braze
    identifier: {email: email}
    mapping: {$bad: id}
    on_removed: delete
streams:
  extole:
    preset: extol
    auth: {type: bearer}
    destination: nowhere
  shop:
    preset: generic
    auth: {type: hmac, secret: s}
    test_destination: braze_test
    mapping:
      events:
        - name: "{{ payload.name }"
          external_id: "{{ payload.id }}"
"""

EVERY_PROBLEM = [
    "headwater.yml:7: destinations.braze.rate_limits.users.alias.new: users.alias.new shares "
    "the rate bucket 'users.identity'; set that",
    "headwater.yml:17: syncs.contacts.mapping.$bad: attribute name '$bad' must not start with '$'",
    "headwater.yml:18: syncs.contacts.on_removed: delete needs an external_id, user_alias or "
    "braze_id identifier, not email (Braze deletes users by those only); use unset or keep",
    "headwater.yml:21: streams.extole.preset: input should be 'extole', 'actioniq' or 'generic'",
    "headwater.yml:22: streams.extole.auth.token: field required",
    "headwater.yml:23: streams.extole.destination: no destination named 'nowhere'",
    "headwater.yml:27: streams.shop.test_destination: no destination named 'braze_test'",
    "headwater.yml:30: streams.shop.mapping.events.0.name: template '{{ payload.name }': "
    "expected '}}', found end of file",
]


def test_validate_and_serve_find_the_same_problems_in_every_section_at_once(
    tmp_path: Path,
) -> None:
    from headwater.cli.app import app

    (tmp_path / "headwater.yml").write_text(EVERY_SECTION_WRONG)
    (tmp_path / "c.csv").write_text("id,email\n1,a@example.com\n")

    validated = runner.invoke(app, ["validate", "-p", str(tmp_path)])
    served = runner.invoke(app, ["serve", "-p", str(tmp_path), "--port", "0"])

    assert validated.exit_code == 1 and served.exit_code == 1
    assert validated.output.splitlines() == [
        f"{tmp_path / 'headwater.yml'}: 8 problems",
        *(f"  {p}" for p in EVERY_PROBLEM),
    ]
    assert served.output.splitlines() == [f"error: {p}" for p in EVERY_PROBLEM]


def test_validate_lists_the_streams_it_checked(tmp_path: Path) -> None:
    from headwater.cli.app import app

    (tmp_path / "headwater.yml").write_text(
        "destinations:\n  braze: {url: 'http://127.0.0.1:9', api_key: k}\n"
        "streams:\n  extole: {preset: extole, auth: {type: bearer, token: s3cret-token}}\n"
    )

    result = runner.invoke(app, ["validate", "-p", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert "extole -> braze" in result.output and "s3cret-token" not in result.output
