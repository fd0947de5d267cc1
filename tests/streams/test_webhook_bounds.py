"""One webhook cannot keep the gateway busy: a batch beyond the stream's ``max_items`` or a
payload mapping to more than ``max_objects`` is refused with a 413 before the work, and the
mapping itself runs off the event loop, so /healthz answers while a big body maps."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
from gateway_harness import fake_braze, make_settings, running_gateway

from headwater.config.streams import DEFAULT_MAX_ITEMS, parse_streams
from headwater.streams import presets
from headwater.streams.presets import PRESETS

TOKEN = {"Authorization": "Bearer shop-token"}
ORDERS = {
    "each": "orders",
    "events": [{"external_id": "{{ item.user }}", "name": "order", "time": "{{ item.at }}"}],
}
STREAMS = {
    "shop": {"preset": "generic", "auth": {"type": "bearer", "token": "shop-token"},
             "mapping": ORDERS},
    "small": {"preset": "generic", "auth": {"type": "bearer", "token": "shop-token"},
              "mapping": {**ORDERS, "attributes": [{"external_id": "{{ item.user }}",
                                                    "seen": True}]},
              "max_items": 10, "max_objects": 15},
    "aiq": {"preset": "actioniq", "auth": {"type": "bearer", "token": "shop-token"},
            "max_items": 3},
    "extole": {"preset": "extole", "auth": {"type": "bearer", "token": "shop-token"},
               "max_items": 2},
}  # fmt: skip


@pytest.fixture
def gateway(sqlite_state):
    with fake_braze() as (_fake, url):
        settings = make_settings(sqlite_state, {"braze": url}, STREAMS, run_workers=False)
        with running_gateway(settings) as gw:
            yield gw


def _post(gw, stream: str, body: object, **kwargs) -> httpx.Response:
    return httpx.post(f"{gw.url}/hooks/{stream}", content=orjson.dumps(body), headers=TOKEN,
                      timeout=120, **kwargs)  # fmt: skip


def _orders(n: int) -> dict:
    return {"orders": [{"user": f"u{i}", "at": "2024-05-02T10:00:00Z"} for i in range(n)]}


def test_a_million_empty_orders_are_refused_before_mapping(gateway):
    body = {"orders": [{}] * 1_000_000}
    answer = _post(gateway, "shop", body)
    assert answer.status_code == 413
    message = answer.json()["message"]
    assert "1000000 items" in message and f"at most {DEFAULT_MAX_ITEMS}" in message
    assert "max_items" in message
    assert gateway.hub.outbox.depth() == 0


@pytest.mark.parametrize(
    ("stream", "body", "limit"),
    [
        ("small", _orders(11), "max_items"),
        ("small", _orders(8), "max_objects"),  # 8 events + 8 attributes = 16 > 15
        ("aiq", {"events": [{"external_id": "u", "event_name": "e"}] * 4}, "max_items"),
        ("aiq", [{"external_id": "u", "event_name": "e"}] * 4, "max_items"),
        ("extole", [{"event_name": "shared", "person": {"email": "a@example.com"}}] * 3,
         "max_items"),
    ],
)  # fmt: skip
def test_each_preset_refuses_payloads_beyond_the_streams_bounds(gateway, stream, body, limit):
    answer = _post(gateway, stream, body)
    assert answer.status_code == 413, answer.text
    assert limit in answer.json()["message"]
    assert gateway.hub.outbox.depth() == 0


def test_payloads_within_the_bounds_are_accepted(gateway):
    assert _post(gateway, "small", _orders(7)).status_code == 202  # 14 objects
    three = [{"external_id": f"u{i}", "event_name": "e"} for i in range(3)]
    assert _post(gateway, "aiq", three).status_code == 202
    assert gateway.hub.outbox.depth() == 14 + 3


def test_bounds_are_checked_when_the_stream_is_loaded():
    from headwater.errors import ConfigError

    bad = {"preset": "actioniq", "auth": {"type": "bearer", "token": "t"}, "max_items": 0}
    with pytest.raises(ConfigError, match=r"streams\.aiq\.max_items"):
        parse_streams({"aiq": bad})


def test_healthz_answers_while_a_webhook_is_still_mapping(gateway, monkeypatch):
    started, release = threading.Event(), threading.Event()
    generic = PRESETS["generic"]

    def slow_generic(payload, stream, config):
        started.set()
        assert release.wait(timeout=120), "the test never released the mapping"
        return generic(payload, stream, config)

    monkeypatch.setitem(presets.PRESETS, "generic", slow_generic)
    with ThreadPoolExecutor(1) as pool:
        posted = pool.submit(_post, gateway, "shop", _orders(100))
        try:
            assert started.wait(timeout=60), "the webhook never reached its mapping"
            health = httpx.get(f"{gateway.url}/healthz", timeout=30)
            assert health.status_code == 200
            assert not posted.done()  # the mapping is provably still running
        finally:
            release.set()
        assert posted.result(timeout=120).status_code == 202
    assert gateway.hub.outbox.depth() == 100
