"""POST /hooks/{stream}: authentication, refusals that enqueue nothing, delivery, routing,
duplicates, Connected Content and the inspector, over a real socket."""

from __future__ import annotations

import httpx
import orjson
import pytest
from gateway_harness import fake_braze, make_settings, running_gateway, wait_until

from headwater.state.outbox import outbox
from headwater.streams.auth import sign_body

PASSWORD = "extole-webhook-password-1"
TEST_PASSWORD = "extole-test-password-2"
HMAC_SECRET = "aiq-signing-secret-3"
CONTENT_TOKEN = "content-token-4"

STREAMS = {
    "extole": {
        "preset": "extole",
        "auth": {"type": "basic", "username": "extole", "password": PASSWORD},
        "destination": "braze",
        "test_destination": "braze_test",
        "test_token": TEST_PASSWORD,
        "content": {"attributes": ["share_link", "share_code"], "token": CONTENT_TOKEN},
    },
    "aiq": {
        "preset": "actioniq",
        "auth": {"type": "hmac", "secret": HMAC_SECRET, "header": "X-AIQ-Signature",
                 "prefix": "sha256="},
        "test_destination": "braze_test",
        "test_field": "is_test",
    },
    "shop": {
        "preset": "generic",
        "auth": {"type": "bearer", "token": "shop-token-5"},
        "mapping": {
            "events": [{"external_id": "{{ user }}", "name": "{{ type }}", "time": "{{ at }}"}],
            "attributes": [{"external_id": "{{ user }}", "email": "{{ email }}"}],
        },
    },
}  # fmt: skip


@pytest.fixture
def hub_and_receivers(sqlite_state):
    with fake_braze() as (prod, prod_url), fake_braze() as (test, test_url):
        settings = make_settings(sqlite_state, {"braze": prod_url, "braze_test": test_url}, STREAMS)
        with running_gateway(settings) as gw:
            yield gw, prod, test


def _post_extole(gw, payload, password=PASSWORD, **kwargs) -> httpx.Response:
    return httpx.post(f"{gw.url}/hooks/extole", json=payload, auth=("extole", password), **kwargs)


def test_extole_webhook_is_accepted_after_commit_and_delivered(hub_and_receivers, extole_case):
    gw, prod, test = hub_and_receivers
    answer = _post_extole(gw, extole_case("created_share_link"))
    assert answer.status_code == 202
    assert answer.json() == {"message": "accepted", "objects": 2, "duplicates": 0,
                             "destination": "production"}  # fmt: skip
    wait_until(lambda: prod.events("extole_created_share_link"))
    assert prod.objects["attributes"][0]["extole_share_link"] == "https://refer.shop.example/ada"
    assert test.requests == []


def test_bad_auth_is_401_unknown_stream_404_and_nothing_is_enqueued(hub_and_receivers, extole_case):
    gw, prod, _ = hub_and_receivers
    payload = extole_case("shared")
    assert _post_extole(gw, payload, password="wrong").status_code == 401
    assert httpx.post(f"{gw.url}/hooks/extole", json=payload).status_code == 401
    bearer = httpx.post(f"{gw.url}/hooks/shop", json={}, headers={"Authorization": "Bearer nope"})
    assert bearer.status_code == 401
    unsigned = httpx.post(f"{gw.url}/hooks/aiq", json={"event_name": "x", "external_id": "u"})
    assert unsigned.status_code == 401
    missing = httpx.post(f"{gw.url}/hooks/nowhere", json=payload, auth=("extole", PASSWORD))
    assert missing.status_code == 404
    with gw.hub.engine.connect() as conn:
        assert conn.execute(outbox.select()).all() == []


def test_malformed_oversize_and_contract_failing_payloads_get_clear_4xx(hub_and_receivers):
    gw, prod, _ = hub_and_receivers
    auth = ("extole", PASSWORD)
    bad_json = httpx.post(f"{gw.url}/hooks/extole", content=b'{"event_name": ', auth=auth)
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["message"]
    big = httpx.post(
        f"{gw.url}/hooks/extole", content=b"[" + b" " * (4 * 1024 * 1024) + b"]", auth=auth
    )
    assert big.status_code == 413
    no_identity = _post_extole(gw, {"event_name": "shared", "person": {}})
    assert no_identity.status_code == 422
    assert no_identity.json()["errors"][0]["field"] == "partner_user_id"
    bad_email = httpx.post(
        f"{gw.url}/hooks/shop",
        json={"user": "u1", "type": "signup", "at": "2024-05-02T10:00:00Z", "email": "nope"},
        headers={"Authorization": "Bearer shop-token-5"},
    )
    assert bad_email.status_code == 422
    assert bad_email.json()["errors"] == [
        {
            "type": "The value provided for the 'email' field is not a valid email.",
            "input_array": "attributes",
            "index": 0,
        }
    ]
    with gw.hub.engine.connect() as conn:
        assert conn.execute(outbox.select()).all() == []


def test_hmac_signed_actioniq_webhook_is_accepted(hub_and_receivers):
    gw, prod, _ = hub_and_receivers
    body = orjson.dumps({"event_name": "aiq_entered", "external_id": "u9", "timestamp": 1714644000})
    signature = sign_body(HMAC_SECRET, body, prefix="sha256=")
    answer = httpx.post(f"{gw.url}/hooks/aiq", content=body, headers={"X-AIQ-Signature": signature})
    assert answer.status_code == 202
    tampered = httpx.post(
        f"{gw.url}/hooks/aiq", content=body + b" ", headers={"X-AIQ-Signature": signature}
    )
    assert tampered.status_code == 401
    wait_until(lambda: prod.events("aiq_entered"))


def test_reposted_event_is_delivered_once(hub_and_receivers, extole_case):
    gw, prod, _ = hub_and_receivers
    payload = extole_case("reward_fulfilled")
    first = _post_extole(gw, payload)
    again = _post_extole(gw, payload)
    assert first.json()["duplicates"] == 0
    assert again.status_code == 202 and again.json()["duplicates"] == 1
    # Same content without an event id (generic stream) is recognised by its hash.
    for _ in range(2):
        httpx.post(
            f"{gw.url}/hooks/shop",
            json={"user": "u1", "type": "signup", "at": "2024-05-02T10:00:00Z", "email": "a@b.co"},
            headers={"Authorization": "Bearer shop-token-5"},
        )
    wait_until(lambda: prod.events("extole_reward_fulfilled") and prod.events("signup"))
    metrics = gw.metrics()
    held = next(line for line in metrics.splitlines() if line.startswith("headwater_seen_event"))
    assert float(held.split()[1]) >= 2  # the event id and the content hash, kept for the window
    wait_until(lambda: gw.hub.outbox.depth() == 0)
    assert len(prod.events("extole_reward_fulfilled")) == 1
    assert len(prod.events("signup")) == 1


def test_test_events_go_to_the_test_destination_only(hub_and_receivers, extole_case):
    gw, prod, test = hub_and_receivers
    by_token = _post_extole(gw, extole_case("shared"), password=TEST_PASSWORD)
    assert by_token.json()["destination"] == "test"
    body = orjson.dumps({"event_name": "aiq_test", "external_id": "u1", "is_test": True})
    by_field = httpx.post(
        f"{gw.url}/hooks/aiq", content=body,
        headers={"X-AIQ-Signature": sign_body(HMAC_SECRET, body, prefix="sha256=")},
    )  # fmt: skip
    assert by_field.json()["destination"] == "test"
    wait_until(lambda: test.events("extole_shared") and test.events("aiq_test"))
    wait_until(lambda: gw.hub.outbox.depth() == 0)
    assert prod.requests == []


def test_connected_content_serves_latest_share_link(hub_and_receivers, extole_case):
    gw, _, _ = hub_and_receivers
    _post_extole(gw, extole_case("created_share_link"))
    url = f"{gw.url}/content/extole/cust-1001"
    denied = httpx.get(url)
    assert denied.status_code == 401
    answer = httpx.get(url, headers={"Authorization": f"Bearer {CONTENT_TOKEN}"})
    assert answer.status_code == 200
    assert answer.json() == {"share_link": "https://refer.shop.example/ada", "share_code": "ADA10"}
    by_query = httpx.get(url, params={"token": CONTENT_TOKEN})
    assert by_query.json()["share_code"] == "ADA10"
    changed = extole_case("created_share_link")
    changed["event_id"] = "another"
    changed["data"]["share_code"] = "ADA20"
    _post_extole(gw, changed)
    assert httpx.get(url, params={"token": CONTENT_TOKEN}).json()["share_code"] == "ADA20"
    unknown = httpx.get(f"{gw.url}/content/extole/nobody", params={"token": CONTENT_TOKEN})
    assert unknown.status_code == 404


def test_inspector_shows_payloads_in_and_out_with_secrets_redacted(hub_and_receivers, extole_case):
    gw, prod, _ = hub_and_receivers
    payload = extole_case("shared")
    payload["data"]["api_token"] = "super-secret-value"
    _post_extole(gw, payload)
    wait_until(lambda: prod.events("extole_shared"))
    reader = gw.key("console", "streams.read")
    url = f"{gw.url}/api/streams/extole/events"
    assert httpx.get(url).status_code == 401
    answer = httpx.get(url, headers={"Authorization": f"Bearer {reader}"})
    assert answer.status_code == 200
    events = answer.json()["events"]
    directions = {e["direction"] for e in events}
    assert directions == {"in", "out"}
    incoming = next(e for e in events if e["direction"] == "in")
    assert incoming["payload"]["data"]["api_token"] == "[redacted]"
    assert "super-secret-value" not in answer.text
    assert httpx.get(f"{gw.url}/api/streams/nope/events",
                     headers={"Authorization": f"Bearer {reader}"}).status_code == 404  # fmt: skip


def test_reward_states_not_forwarded_are_acknowledged_and_ignored(hub_and_receivers, extole_case):
    gw, prod, _ = hub_and_receivers
    answer = _post_extole(gw, extole_case("reward_earned"))
    assert answer.status_code == 200
    assert answer.json() == {"message": "ignored", "reason": "reward state EARNED is not forwarded"}
    assert gw.hub.outbox.depth() == 0
