"""Timestamped HMAC webhooks: a request outside the tolerance is refused, and a captured
request sent again is refused too, across restarts and across processes sharing the state
store. Time is an injected clock; the servers and databases are real."""

from __future__ import annotations

import httpx
import orjson
import pytest
from gateway_harness import fake_braze, make_settings, running_gateway, wait_until

from headwater.config.streams import parse_streams
from headwater.errors import ConfigError
from headwater.state.db import open_state
from headwater.state.outbox import outbox
from headwater.state.signatures import SignatureLog, signature_key
from headwater.streams.auth import sign_body

SECRET = "aiq-signing-secret-ts"
NOW = 1_800_000_000
STREAMS = {
    "aiq": {
        "preset": "actioniq",
        "auth": {"type": "hmac", "secret": SECRET, "header": "X-AIQ-Signature",
                 "prefix": "sha256=", "timestamp_header": "X-AIQ-Timestamp",
                 "tolerance_seconds": 300},
    },
    "slack_like": {
        "preset": "actioniq",
        "auth": {"type": "hmac", "secret": SECRET, "header": "X-Sig", "prefix": "v0=",
                 "timestamp_header": "X-Sig-Time", "signed_payload": "v0:{timestamp}:{body}"},
    },
}  # fmt: skip


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _signed(body: bytes, stamp: int | str) -> dict[str, str]:
    return {
        "X-AIQ-Signature": sign_body(SECRET, body, prefix="sha256=", timestamp=stamp),
        "X-AIQ-Timestamp": str(stamp),
    }


def _tier(tier: str) -> bytes:
    return orjson.dumps({"event_name": "tier_changed", "external_id": "u1", "tier": tier,
                         "timestamp": NOW})  # fmt: skip


def _outbox_rows(gw) -> int:
    with gw.hub.engine.connect() as conn:
        return len(conn.execute(outbox.select()).all())


@pytest.fixture(params=["sqlite", "postgres"])
def state_url_any(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def gateway(sqlite_state):
    with fake_braze() as (fake, url):
        settings = make_settings(sqlite_state, {"braze": url}, STREAMS, run_workers=False)
        with running_gateway(settings) as gw:
            gw.hub.clock = Clock()
            yield gw, settings


def test_a_replayed_signed_request_is_refused_and_changes_nothing(gateway):
    gw, _ = gateway
    gold, platinum = _tier("gold"), _tier("platinum")
    captured = _signed(gold, NOW)
    assert httpx.post(f"{gw.url}/hooks/aiq", content=gold, headers=captured).status_code == 202
    gw.hub.clock.now += 60
    upgrade = httpx.post(
        f"{gw.url}/hooks/aiq", content=platinum, headers=_signed(platinum, NOW + 60)
    )
    assert upgrade.status_code == 202
    rows = _outbox_rows(gw)
    gw.hub.clock.now += 60
    replay = httpx.post(f"{gw.url}/hooks/aiq", content=gold, headers=captured)
    assert replay.status_code == 409
    assert "received before" in replay.json()["message"]
    assert _outbox_rows(gw) == rows
    # Upper-case hex is the same signature: no way around the check by re-spelling it.
    shouted = {**captured, "X-AIQ-Signature": "sha256=" + captured["X-AIQ-Signature"][7:].upper()}
    assert httpx.post(f"{gw.url}/hooks/aiq", content=gold, headers=shouted).status_code == 409
    # Past the window the old signature is stale, never accepted again.
    gw.hub.clock.now = NOW + 301
    stale = httpx.post(f"{gw.url}/hooks/aiq", content=gold, headers=captured)
    assert stale.status_code == 401
    assert "300 seconds" in stale.json()["message"]
    assert _outbox_rows(gw) == rows
    # The partner sending the same change again, signed afresh, is let in.
    again = httpx.post(f"{gw.url}/hooks/aiq", content=gold, headers=_signed(gold, NOW + 301))
    assert again.status_code == 202


def test_timestamps_outside_the_tolerance_or_malformed_are_refused(gateway):
    gw, _ = gateway
    body = _tier("gold")
    for stamp in (NOW - 301, NOW + 301, NOW - 10**9):
        answer = httpx.post(f"{gw.url}/hooks/aiq", content=body, headers=_signed(body, stamp))
        assert answer.status_code == 401, stamp
    for edge in (NOW - 300, NOW + 300):
        answer = httpx.post(f"{gw.url}/hooks/aiq", content=body, headers=_signed(body, edge))
        assert answer.status_code == 202, edge
    good = _signed(body, NOW)
    hostile = [
        "",
        "-1",
        "1e9",
        "1800000000.5",
        "9" * 5000,
        "0x6b49d200",
        "١٢٣".encode(),
        str(NOW + 1),
    ]
    for stamp in hostile:  # unsigned, re-signed by an attacker without the secret, or moved
        headers = {**good, "X-AIQ-Timestamp": stamp}
        answer = httpx.post(f"{gw.url}/hooks/aiq", content=body, headers=headers)
        assert answer.status_code == 401, stamp
    no_stamp = httpx.post(f"{gw.url}/hooks/aiq", content=body,
                          headers={"X-AIQ-Signature": good["X-AIQ-Signature"]})  # fmt: skip
    assert no_stamp.status_code == 401
    old_style = httpx.post(f"{gw.url}/hooks/aiq", content=body,
                           headers={"X-AIQ-Signature": sign_body(SECRET, body, prefix="sha256=")})  # fmt: skip
    assert old_style.status_code == 401


def test_a_custom_signed_payload_like_slacks(gateway):
    gw, _ = gateway
    body = _tier("gold")
    headers = {
        "X-Sig": sign_body(
            SECRET, body, prefix="v0=", timestamp=NOW, template="v0:{timestamp}:{body}"
        ),
        "X-Sig-Time": str(NOW),
    }
    assert (
        httpx.post(f"{gw.url}/hooks/slack_like", content=body, headers=headers).status_code == 202
    )
    assert (
        httpx.post(f"{gw.url}/hooks/slack_like", content=body, headers=headers).status_code == 409
    )
    wrong = {**headers, "X-Sig": sign_body(SECRET, body, prefix="v0=", timestamp=NOW + 1)}
    assert httpx.post(f"{gw.url}/hooks/slack_like", content=body, headers=wrong).status_code == 401


def test_a_replay_is_refused_after_a_restart(sqlite_state):
    body = _tier("gold")
    captured = _signed(body, NOW)
    with fake_braze() as (_fake, url):
        settings = make_settings(sqlite_state, {"braze": url}, STREAMS, run_workers=False)
        with running_gateway(settings) as first:
            first.hub.clock = Clock()
            assert (
                httpx.post(f"{first.url}/hooks/aiq", content=body, headers=captured).status_code
                == 202
            )
        with running_gateway(settings) as second:
            second.hub.clock = Clock(NOW + 10)
            assert (
                httpx.post(f"{second.url}/hooks/aiq", content=body, headers=captured).status_code
                == 409
            )


def test_a_replay_to_another_process_on_the_same_postgres_is_refused(pg_url):
    body = _tier("gold")
    captured = _signed(body, NOW)
    with fake_braze() as (fake, url):
        settings_a = make_settings(pg_url, {"braze": url}, STREAMS)
        settings_b = make_settings(pg_url, {"braze": url}, STREAMS)
        with running_gateway(settings_a) as a, running_gateway(settings_b) as b:
            a.hub.clock = Clock()
            b.hub.clock = Clock(NOW + 5)
            assert (
                httpx.post(f"{a.url}/hooks/aiq", content=body, headers=captured).status_code == 202
            )
            assert (
                httpx.post(f"{b.url}/hooks/aiq", content=body, headers=captured).status_code == 409
            )
            wait_until(lambda: fake.events("tier_changed"), timeout=20)
            wait_until(lambda: a.hub.outbox.depth() == 0, timeout=20)
            assert len(fake.events("tier_changed")) == 1


def test_the_signature_log_records_releases_and_prunes(state_url_any):
    engine = open_state(state_url_any)
    log = SignatureLog(engine)
    key = signature_key("aiq", b"\x01" * 32)
    assert log.claim(key, NOW + 300, NOW)
    assert not log.claim(key, NOW + 300, NOW + 1)
    log.release(key)  # its request was not committed: a retry must get in
    assert log.claim(key, NOW + 300, NOW + 2)
    other = signature_key("other-stream", b"\x01" * 32)
    assert log.claim(other, NOW + 300, NOW + 3)  # the same bytes on another stream
    assert log.claim(signature_key("aiq", b"\x02" * 32), NOW + 10**6, NOW + 10**5)  # prunes
    with engine.connect() as conn:
        from headwater.state.signatures import used_signatures

        assert len(conn.execute(used_signatures.select()).all()) == 1
    engine.dispose()


def test_timestamp_options_are_checked_when_serve_starts():
    base = {"preset": "actioniq", "auth": {"type": "hmac", "secret": "s"}}
    for auth, problem in (
        ({"tolerance_seconds": 60}, "apply only with timestamp_header"),
        ({"timestamp_header": "X-T", "signed_payload": "{body}"}, "{timestamp}"),
        ({"timestamp_header": "X-T", "tolerance_seconds": 0}, "greater than or equal to 1"),
    ):
        with pytest.raises(ConfigError) as caught:
            parse_streams({"s": {**base, "auth": {**base["auth"], **auth}}})
        assert problem in str(caught.value)
