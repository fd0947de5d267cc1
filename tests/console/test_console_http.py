"""The console over plain HTTP: every page and action refused without a session, CSRF on
every POST, a read-only role, no secret rendered, runs and row errors paged and exported."""

from __future__ import annotations

import re

import httpx
import pytest
from gateway_harness import wait_until

from headwater.state import users

PASSWORD = "correct horse battery"  # tests/console/conftest.py's users
READER_PASSWORD = "only looking here"

PAGES = ["/console/", "/console/syncs/crm_users", "/console/runs/{run}",
         "/console/runs/{run}/errors.csv", "/console/streams/gateway",
         "/console/streams/shop/events", "/console/dead-letters", "/console/keys"]  # fmt: skip
ACTIONS = ["/console/syncs/crm_users/run", "/console/syncs/crm_users/dry-run",
           "/console/schedules/crm_users/pause", "/console/dead-letters/replay",
           "/console/keys", "/console/keys/1/revoke", "/console/logout"]  # fmt: skip


def login(url: str, name: str = "ada", password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=url, headers={"Accept": "text/html"})
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = client.post("/console/login", data={"csrf": csrf, "name": name, "password": password})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/console/keys")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_every_page_and_action_is_refused_without_a_session(console):
    for path in PAGES:
        answer = httpx.get(console.url + path.format(run=console.run_id))
        assert answer.status_code == 401, path
        assert "crm_users" not in answer.text and "dl-user-1" not in answer.text
        browser = httpx.get(console.url + path.format(run=console.run_id),
                            headers={"Accept": "text/html"})  # fmt: skip
        assert browser.status_code == 303 and browser.headers["location"] == "/console/login"
    for path in ACTIONS:
        assert httpx.post(console.url + path, data={"all": "1"}).status_code == 401, path
    forged = {"Cookie": "hw_session=not-a-session", "Authorization": "Bearer hwu_forged"}
    assert httpx.get(console.url + "/console/", headers=forged).status_code == 401


def test_login_sets_a_hardened_cookie_and_wrong_passwords_are_refused(console):
    client = httpx.Client(base_url=console.url)
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    wrong = client.post("/console/login", data={"csrf": csrf, "name": "ada", "password": "nope"})
    assert wrong.status_code == 401 and "hw_session" not in wrong.headers.get("set-cookie", "")
    no_csrf = client.post("/console/login", data={"name": "ada", "password": PASSWORD})
    assert no_csrf.status_code == 403
    good = client.post("/console/login", data={"csrf": csrf, "name": "ada", "password": PASSWORD})
    cookie = good.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    assert client.get("/console/").status_code == 200


def test_actions_need_the_sessions_csrf_token(console):
    client = login(console.url)
    refused = client.post("/console/dead-letters/replay", data={"all": "1"})
    assert refused.status_code == 403
    wrong = client.post("/console/dead-letters/replay", data={"all": "1", "csrf": "x" * 43})
    assert wrong.status_code == 403
    assert client.get("/console/dead-letters").text.count('name="id"') == 1  # still parked


def test_a_read_only_user_sees_and_cannot_act(console):
    client = login(console.url, "reader", READER_PASSWORD)
    page = client.get("/console/dead-letters")
    assert page.status_code == 200 and "dl-user-1" in page.text and "Replay" not in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    answer = client.post("/console/dead-letters/replay", data={"all": "1", "csrf": csrf})
    assert answer.status_code == 403 and "read-only" in answer.text
    keys = client.post("/console/keys", data={"name": "x", "perm": "users.track", "csrf": csrf})
    assert keys.status_code == 403


def test_run_page_pages_searches_and_exports_row_errors(console):
    client = login(console.url)
    page = client.get(f"/console/runs/{console.run_id}")
    assert page.status_code == 200
    assert "user-0" in page.text and "user-99" in page.text and "user-100" not in page.text
    assert "next →" in page.text
    after = re.search(r'after=(\d+)" id="next-errors"', page.text).group(1)
    second = client.get(f"/console/runs/{console.run_id}", params={"after": after})
    assert "user-149" in second.text and ">user-99<" not in second.text
    found = client.get(f"/console/runs/{console.run_id}", params={"q": "user-14"})
    assert "user-140" in found.text and "user-2<" not in found.text
    literal = client.get(f"/console/runs/{console.run_id}", params={"q": "user_%"})
    assert "No row errors" in literal.text  # wildcards are matched as written
    exported = client.get(f"/console/runs/{console.run_id}/errors.csv")
    lines = exported.text.splitlines()
    assert lines[0] == "row_key,field,reason,value" and len(lines) == 154
    assert "'=cmd|calc" in exported.text  # no formula reaches a spreadsheet
    assert (
        "'=HYPERLINK(1)" in exported.text and "user-0,email,not an email: 'bad-0@',bad-0@" in lines
    )


def test_row_errors_show_their_offending_values_searchable_cut_and_never_secret(console):
    client = login(console.url)
    page = client.get(f"/console/runs/{console.run_id}").text
    assert "Offending value" in page and "<code>bad-0@</code>" in page
    long = client.get(f"/console/runs/{console.run_id}", params={"q": "user-l"}).text
    assert "x" * 100 in long and "END" not in long  # cut on the page
    found = client.get(f"/console/runs/{console.run_id}", params={"q": "bad-14", "in": "value"})
    assert ">bad-140@<" in found.text and ">bad-2@<" not in found.text and "user-140" in found.text
    secret = client.get(f"/console/runs/{console.run_id}", params={"q": "user-pw"}).text
    assert "user-pw" in secret and "hunter2" not in secret and "[redacted]" in secret
    exported = client.get(f"/console/runs/{console.run_id}/errors.csv",
                          params={"q": "bad-14", "in": "value"}).text  # fmt: skip
    assert len(exported.splitlines()) == 1 + 11 and "hunter2" not in exported
    full = client.get(f"/console/runs/{console.run_id}/errors.csv").text
    assert "hunter2" not in full and "x" * 400 + "END" in full  # the CSV keeps what is stored


def test_no_secret_is_rendered(console):
    client = login(console.url)
    csrf = csrf_of(client)
    created = client.post("/console/keys", data={"name": "extole", "perm": "users.track",
                                                 "csrf": csrf})  # fmt: skip
    plain = re.search(r'id="new-key-value">([^<]+)<', created.text).group(1)
    assert plain.startswith("hwk_") and created.headers["cache-control"] == "no-store"
    pages = [client.get(p.format(run=console.run_id)).text for p in PAGES]
    text = "\n".join(pages)
    assert plain not in text
    assert console.sandbox.key not in text  # the destination's API key
    assert PASSWORD not in text and "tok-123" not in text  # a redacted payload field


def test_an_api_token_reads_and_acts_without_csrf(console):
    token = users.create_token(console.gw.hub.engine, "ada")
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(console.url + "/console/", headers=headers).status_code == 200
    answer = httpx.post(console.url + f"/console/keys/{999}/revoke", headers=headers)
    assert answer.status_code == 303
    users.revoke_tokens(console.gw.hub.engine, "ada")
    assert httpx.get(console.url + "/console/", headers=headers).status_code == 401


@pytest.mark.parametrize("path", ["/console/runs/abc", "/console/runs/99999999",
                                  "/console/streams/nope", "/console/syncs/nope"])  # fmt: skip
def test_unknown_things_are_404_pages(console, path):
    assert login(console.url).get(path).status_code == 404


def test_hostile_forms_and_queries_do_not_crash(console):
    client = login(console.url)
    csrf = csrf_of(client)
    huge = client.post("/console/keys", content=b"a=" + b"x" * 200_000,
                       headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert huge.status_code == 413
    bad_ids = client.post("/console/dead-letters/replay", data={"id": ["1", "{}"], "csrf": csrf})
    assert bad_ids.status_code == 400
    odd = client.get(f"/console/runs/{console.run_id}", params={"after": "-5", "q": "\x00" * 500})
    assert odd.status_code == 200
    assert client.get("/console/syncs/crm_users", params={"page": "9" * 40}).status_code == 200


def test_a_streams_inspector_shows_only_that_stream(console):
    client = login(console.url)
    answer = httpx.post(f"{console.url}/hooks/shop", json={"user": "only-shop", "city": "Hull"},
                        headers={"Authorization": "Bearer shop-token-5"})  # fmt: skip
    assert answer.status_code < 300
    wait_until(lambda: "only-shop" in client.get("/console/streams/shop/events").text)
    assert "only-shop" not in client.get("/console/streams/gateway/events").text
    assert "only-shop" not in client.get("/console/streams/gateway").text
