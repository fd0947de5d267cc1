"""The console in a real headless Chromium: log in, open a run and its errors, replay a
dead letter and see it arrive in the sandbox, watch a stream's events arrive without a
reload, create and revoke a partner key. Waits are on selectors and conditions, never
on time."""

from __future__ import annotations

import httpx
from gateway_harness import wait_until

PASSWORD = "correct horse battery"  # tests/console/conftest.py's operator


def log_in(page, url: str, name: str = "ada", password: str = PASSWORD) -> None:
    page.goto(f"{url}/console/")
    page.wait_for_selector("#login")  # the overview sent us to the login page
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("#login")
    page.wait_for_selector("#health")


def test_log_in_open_a_run_and_see_its_errors(console, page):
    log_in(page, console.url)
    page.click("#syncs >> text=crm_users")
    page.wait_for_selector("#runs")
    assert page.locator("#chart-rows canvas").count() >= 1  # uPlot drew the runs
    page.click(f"#runs >> text=#{console.run_id}")
    page.wait_for_selector("#row-errors")
    assert "partial" in page.inner_text("#run-status")
    assert page.locator("#row-errors tr").count() == 101  # header + a page of 100
    page.fill("input[name=q]", "user-14")
    page.click("#search button")
    page.wait_for_selector("#row-errors >> text=user-149")
    assert page.locator("#row-errors tr").count() == 12  # user-14, user-140..149
    with page.expect_download() as download:
        page.click("#csv")
    assert download.value.suggested_filename == f"run-{console.run_id}-row-errors.csv"


def test_replay_a_dead_letter_and_watch_it_arrive_in_the_sandbox(console, page):
    log_in(page, console.url)
    page.click("text=Dead letters")
    page.wait_for_selector(f"#letter-{console.letter_id}")
    assert "[redacted]" in page.inner_text("#dead-letters")
    assert "tok-123" not in page.content()
    assert console.sandbox.user("dl-user-1") is None
    page.check(f"#letter-{console.letter_id}")
    page.click("#replay")
    page.wait_for_selector("text=Replayed 1 dead letter(s).")
    wait_until(lambda: console.sandbox.user("dl-user-1") is not None)
    assert console.sandbox.user("dl-user-1")["custom_attributes"]["city"] == "York"


def test_a_streams_events_arrive_live(console, page):
    log_in(page, console.url)
    page.goto(f"{console.url}/console/streams/shop")
    page.wait_for_selector("#no-events")
    answer = httpx.post(
        f"{console.url}/hooks/shop",
        json={"user": "live-1", "city": "Leeds", "password": "hunter2"},
        headers={"Authorization": "Bearer shop-token-5"},
    )
    assert answer.status_code < 300, answer.text
    page.wait_for_selector("#inspector >> text=Leeds")  # swapped in by htmx, no reload
    page.wait_for_selector("#inspector >> text=accepted 1")  # Braze's answer, out
    assert "hunter2" not in page.inner_text("#inspector")


def test_create_a_key_shown_once_then_revoke_it(console, page):
    log_in(page, console.url)
    page.click("text=Partner keys")
    page.fill("#key-name", "extole")
    page.click("#create")
    page.wait_for_selector("#new-key-value")
    plain = page.inner_text("#new-key-value")
    assert plain.startswith("hwk_")
    assert httpx.post(f"{console.url}/users/track", json={"attributes": []},
                      headers={"Authorization": f"Bearer {plain}"}).status_code != 401  # fmt: skip
    page.goto(f"{console.url}/console/keys")
    assert plain not in page.content()
    page.click("#keys >> text=Revoke")
    page.wait_for_selector("text=Revoked 1 key(s).")
    assert "revoked" in page.inner_text("#keys")
    console.gw.hub.keys.invalidate()
    assert httpx.post(f"{console.url}/users/track", json={"attributes": []},
                      headers={"Authorization": f"Bearer {plain}"}).status_code == 401  # fmt: skip


def test_a_read_only_user_gets_no_buttons(console, page):
    log_in(page, console.url, "reader", "only looking here")
    page.goto(f"{console.url}/console/dead-letters")
    page.wait_for_selector("#dead-letters")
    assert page.locator("#replay").count() == 0
    page.click("#logout")
    page.wait_for_selector("#login")
