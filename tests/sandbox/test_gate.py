"""Keys, permissions, rate limits, faults and segments: what every call goes through."""

from __future__ import annotations

import math
import time

import httpx
import pytest

from headwater.sandbox.testing import run_sandbox

TRACK = {"attributes": [{"external_id": "u1", "a": 1}]}


def post_track(url: str, headers: dict | None = None, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/users/track", json=TRACK, headers=headers or {}, **kwargs)


# -- keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-real-key-at-all",
        "Bearer",
        "Basic c2FuZGJveC10ZXN0LWtleQ==",
        'Bearer "sandbox-test-key"',  # quoting the real key is a documented 401
        "Bearer 'sandbox-test-key'",
    ],
)
def test_unknown_or_malformed_keys_get_401_without_the_key_in_the_body(sandbox, authorization):
    response = post_track(sandbox.url, {"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["message"].startswith("Invalid API key")
    assert "not-a-real-key-at-all" not in response.text
    assert "sandbox-test-key" not in response.text
    assert sandbox.users() == []


def test_missing_key_is_401(sandbox):
    assert post_track(sandbox.url).status_code == 401


def test_key_without_the_endpoints_permission_gets_403_access_denied(sandbox):
    secret = sandbox.sandbox.keys.create("exporter", ["users.export.ids"])
    headers = {"Authorization": f"Bearer {secret}"}
    response = post_track(sandbox.url, headers)
    assert response.status_code == 403
    assert response.json() == {"message": "Access Denied"}
    exported = httpx.post(f"{sandbox.url}/users/export/ids", json={"external_ids": ["x"]},
                          headers=headers)  # fmt: skip
    assert exported.status_code == 201


def test_revoked_key_stops_working(sandbox):
    secret = sandbox.sandbox.keys.create("temp", ["users.track"])
    headers = {"Authorization": f"Bearer {secret}"}
    assert post_track(sandbox.url, headers).status_code == 201
    assert sandbox.sandbox.keys.revoke("temp")
    assert post_track(sandbox.url, headers).status_code == 401


def test_legacy_api_key_in_body_is_accepted(sandbox):
    response = httpx.post(f"{sandbox.url}/users/track", json={**TRACK, "api_key": sandbox.key})
    assert response.status_code == 201


# -- rate limits --------------------------------------------------------------------------


def test_every_answer_carries_rate_limit_headers(sandbox, api):
    answers = [
        api.post("/users/track", json=TRACK),
        api.post("/users/track", json={}),
        api.get("/segments/list"),
        api.post("/users/export/ids", json={"external_ids": ["u1"]}),
        api.post("/users/track", json=TRACK, headers={"Authorization": "Bearer wrong"}),
        api.post("/users/track", content=b"x" * (4 * 1024 * 1024 + 1)),
    ]
    limited = sandbox.sandbox.keys.create("segments-only", ["segments.list"])
    answers.append(api.post("/users/track", json=TRACK,
                            headers={"Authorization": f"Bearer {limited}"}))  # fmt: skip
    assert [a.status_code for a in answers] == [201, 400, 200, 201, 401, 413, 403]
    for response in answers:
        assert int(response.headers["X-RateLimit-Limit"]) > 0, response.request.url
        assert "X-RateLimit-Remaining" in response.headers
        assert int(response.headers["X-RateLimit-Reset"]) >= time.time() - 1


def test_429_once_the_budget_is_spent_and_back_after_the_window(clock):
    """The window runs on a clock the test steps: no sleeping, no racing a boundary."""
    with run_sandbox(clock=clock) as sb:
        headers = {"Authorization": f"Bearer {sb.key}"}
        window = 60.0
        sb.set_rate_limit("users.track", 3, window)
        clock.now = math.floor(clock.now / window) * window + 1  # just past a boundary
        answers = [post_track(sb.url, headers) for _ in range(3)]
        clock.advance(window - 2)  # late in the same window
        answers.append(post_track(sb.url, headers))
        assert [a.status_code for a in answers] == [201, 201, 201, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert answers[3].json() == {"message": "Rate limit exceeded"}
        assert answers[3].headers["X-RateLimit-Limit"] == "3"
        reset = int(answers[3].headers["X-RateLimit-Reset"])
        assert {a.headers["X-RateLimit-Reset"] for a in answers} == {str(reset)}
        assert reset == clock.now + 1
        clock.now = reset  # the window is over
        again = post_track(sb.url, headers)
        assert again.status_code == 201
        assert int(again.headers["X-RateLimit-Reset"]) == reset + window  # a new window
        assert again.headers["X-RateLimit-Remaining"] == "2"
        # other buckets keep their own budget
        exported = httpx.post(
            f"{sb.url}/users/export/ids", json={"external_ids": ["u1"]}, headers=headers
        )
        assert exported.status_code == 201


def test_rate_limit_settings_are_validated(sandbox):
    bad = httpx.post(f"{sandbox.url}/_sandbox/rate_limits", json={"users.track": {"limit": 0}})
    assert bad.status_code == 400
    unknown = httpx.post(f"{sandbox.url}/_sandbox/rate_limits", json={"nope": {"limit": 1,
                                                                               "window_seconds": 1}})  # fmt: skip
    assert unknown.status_code == 400


# -- faults -------------------------------------------------------------------------------


def test_fault_shares_give_429s_and_5xx_in_proportion(sandbox):
    sandbox.set_faults(rate_429=0.3, rate_5xx=0.3)
    headers = {"Authorization": f"Bearer {sandbox.key}"}
    with httpx.Client(base_url=sandbox.url, headers=headers) as client:
        statuses = [client.post("/users/track", json=TRACK).status_code for _ in range(120)]
    n429 = statuses.count(429)
    n5xx = sum(1 for s in statuses if s >= 500)
    assert 15 <= n429 <= 60
    assert 15 <= n5xx <= 60
    assert {s for s in statuses if s >= 500} <= {500, 502, 503, 504}
    assert statuses.count(201) == 120 - n429 - n5xx
    assert sandbox.counters()["requests"]["users.track"] == statuses.count(201)


def test_latency_fault_slows_answers(sandbox, api):
    sandbox.set_faults(latency_ms=300)
    started = time.perf_counter()
    assert api.post("/users/track", json=TRACK).status_code == 201
    assert time.perf_counter() - started >= 0.3


def test_dropped_connections_surface_as_protocol_errors(sandbox, api):
    sandbox.set_faults(drop_rate=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post("/users/track", json=TRACK)
    sandbox.set_faults(drop_rate=0)
    assert sandbox.users() == []
    assert api.post("/users/track", json=TRACK).status_code == 201


def test_fault_settings_are_validated(sandbox):
    for body in ({"rate_429": 2}, {"latency_ms": -1}, {"nonsense": 1}, {"rate_5xx": "x"}):
        response = httpx.post(f"{sandbox.url}/_sandbox/faults", json=body)
        assert response.status_code == 400, body


# -- segments --------------------------------------------------------------------------


def test_segments_list_pages_sorts_and_skips_archived(sandbox, api):
    segments = [{"id": f"seg-{i:03d}", "name": f"S{i}", "tags": ["crm"]} for i in range(150)]
    segments.append({"id": "seg-archived", "name": "old", "archived": True})
    sandbox.seed(segments=segments)
    first = api.get("/segments/list")
    assert first.status_code == 200
    body = first.json()
    assert body["message"] == "success"
    assert len(body["segments"]) == 100
    assert body["segments"][0] == {"id": "seg-000", "name": "S0",
                                   "analytics_tracking_enabled": False, "tags": ["crm"]}  # fmt: skip
    second = api.get("/segments/list", params={"page": 1}).json()["segments"]
    assert [s["id"] for s in second] == [f"seg-{i:03d}" for i in range(100, 150)]
    newest = api.get("/segments/list", params={"sort_direction": "desc"}).json()["segments"]
    assert newest[0]["id"] == "seg-149"
    assert api.get("/segments/list", params={"page": 2}).json()["segments"] == []
    assert api.get("/segments/list", params={"page": "-1"}).status_code == 400
    assert api.get("/segments/list", params={"sort_direction": "up"}).status_code == 400
