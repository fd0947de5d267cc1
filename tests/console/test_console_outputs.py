"""The audiences and exports pages over real data: an audience's members per split and
holdout, its entries and exits run by run and its latest stays; segment export runs and
landed tables; Currents events landed per type and the batches refused."""

from __future__ import annotations

import re

import httpx
import pytest
from tests.console.outputs_fixture import PASSWORD, served_outputs


@pytest.fixture
def served(tmp_path):
    with served_outputs(tmp_path) as running:
        yield running


def login(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, headers={"Accept": "text/html"}, timeout=120)
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    client.post("/console/login", data={"csrf": csrf, "name": "ada", "password": PASSWORD})
    return client


def test_audiences_and_exports_pages_show_what_ran(served):
    client = login(served.url)
    listing = client.get("/console/audiences")
    assert listing.status_code == 200
    assert 'href="/console/audiences/vip"' in listing.text and "holdout: <b>" in listing.text
    first, second = served.audience_runs
    assert f"#{second}" in listing.text  # the last run
    page = client.get("/console/audiences/vip").text
    assert "Members per split" in page and f"#{first}" in page and f"#{second}" in page
    stays = client.get("/console/audiences/vip/stays").text
    assert "P0" in stays and "still in" in stays
    exports = client.get("/console/exports").text
    assert f"#{served.export_run}" in exports and "segment_everyone" in exports
    assert "users.behaviors.CustomEvent: <b>5</b>" in exports
    assert "users.messages.email.Open: <b>2</b>" in exports
    assert re.search(r'<td class="bad">1</td>', exports)  # one refused batch kept
    assert "currents-token" not in exports  # the receiver's token is never shown
    assert client.get("/console/audiences/nope").status_code == 404


def test_the_pages_are_refused_without_a_session(served):
    for path in ("/console/audiences", "/console/audiences/vip", "/console/exports",
                 "/console/audiences/vip/stays"):  # fmt: skip
        assert httpx.get(served.url + path).status_code == 401, path


def test_open_them_in_a_browser(served, page):
    page.goto(f"{served.url}/console/")
    page.wait_for_selector("#login")
    page.fill("input[name=name]", "ada")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login")
    page.wait_for_selector("#health")
    page.click("header >> text=Audiences")
    page.click("#audiences >> text=vip")
    page.wait_for_selector("#splits")
    assert page.locator("#chart-moves canvas").count() >= 1  # uPlot drew entries and exits
    page.wait_for_selector("#stays-table >> text=still in")  # loaded by htmx after the page
    page.click("header >> text=Exports")
    page.wait_for_selector("#receivers >> text=users.behaviors.CustomEvent")
    assert "segment_everyone" in page.inner_text("#segments")
