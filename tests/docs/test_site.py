"""The documentation site builds with ``mkdocs build --strict`` (a broken link, a missing
page or a page left out of the navigation fails), and its reference pages are generated from
the code and cover all of it."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from headwater.cli.app import app
from headwater.docs_reference import cli_commands, project_file_sections
from headwater.gateway.routes import ROUTES as GATEWAY_ROUTES
from headwater.sandbox.coverage import served_routes
from headwater.server.api import ROUTES as API_ROUTES
from headwater.server.metrics import ROUTES as METRICS_ROUTES
from headwater.server.schedules import ROUTES as SCHEDULE_ROUTES
from headwater.streams.webhooks import ROUTES as WEBHOOK_ROUTES
from tests.docs.examples import DOCS, ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _text(site: Path, page: str) -> str:
    return html.unescape((site / page / "index.html").read_text(encoding="utf-8"))


def test_site_builds_strict_with_every_page(site: Path):
    pages = {p.relative_to(DOCS).with_suffix("") for p in DOCS.rglob("*.md")}
    for page in pages:
        built = site / ("index.html" if page.name == "index" else page / "index.html")
        assert built.exists(), page


def test_every_project_file_field_is_in_the_reference_with_a_description(site: Path):
    page = _text(site, "reference/headwater-yml")
    undescribed = []
    for _path, _model, rows in project_file_sections():
        for row in rows:
            assert row.path in page, row.path
            if not row.description:
                undescribed.append(row.path)
    assert not undescribed, "add description= to these fields' models"


def test_every_cli_command_and_option_is_in_the_reference(site: Path):
    page = _text(site, "reference/cli")
    for name, command in cli_commands(typer.main.get_command(app)):
        if name == "headwater":
            continue
        assert name in page
        assert command.help, f"{name} has no help text"
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert opt in page, f"{name} {opt}"


def test_python_api_is_rendered_from_docstrings(site: Path):
    page = _text(site, "reference/python-api")
    assert "BrazeClient" in page and "Send every item to" in page  # track's docstring


def _route_path(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path)


def test_http_api_page_lists_every_route():
    page = (DOCS / "reference" / "http-api.md").read_text(encoding="utf-8")
    gateway = [
        (method, route.path)
        for route in (*GATEWAY_ROUTES, *WEBHOOK_ROUTES, *API_ROUTES, *METRICS_ROUTES)
        + tuple(SCHEDULE_ROUTES)
        for method in route.methods
        if method != "HEAD"
    ]
    missing = [
        f"{method} {_route_path(path)}"
        for method, path in [*gateway, *served_routes()]
        if f"`{method} {_route_path(path)}" not in page
    ]
    assert not missing, "document these routes in docs/reference/http-api.md"
