"""Forwarding received Currents events to another HTTP endpoint, through the outbox: as
Braze sends them (batches of at most 100, version header, the forward's own token),
retried on 5xx/429, split to one event per request on a 400 with only the refused event
parked in the dead-letter queue, and each event id forwarded once."""

from __future__ import annotations

import pytest
from currents_harness import FORWARD_TOKEN, currents_sink, event, post, running_hub
from gateway_harness import wait_until

from headwater.state.dead_letters import list_dead_letters


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


def _forward(url: str, **options) -> dict:
    return {"forward": {"url": url, "token": FORWARD_TOKEN, "retry_base_seconds": 0.01,
                        "retry_max_seconds": 0.05, **options}}  # fmt: skip


def test_events_are_forwarded_as_braze_sends_them(state_url, tmp_path):
    with (
        currents_sink() as (sink, url),
        running_hub(state_url, tmp_path, braze=_forward(url)) as hub,
    ):
        events = [event() for _ in range(150)]
        assert post(hub.url, {"events": events[:100]}).status_code == 200
        assert post(hub.url, {"events": events[100:]}).status_code == 200
        assert post(hub.url, {"events": events[:10]}).status_code == 200  # Braze's resend
        wait_until(lambda: len(sink.ids()) >= 150)
        assert sorted(sink.ids()) == sorted(e["id"] for e in events)
        assert all(len(b["events"]) <= 100 for b in sink.batches)
        assert sink.batches[0]["events"][0] == events[0]
        headers = sink.headers[0]
        assert headers["authorization"] == f"Bearer {FORWARD_TOKEN}"
        assert headers["braze-currents-version"] == "1"


def test_5xx_and_429_are_retried(state_url, tmp_path):
    with (
        currents_sink() as (sink, url),
        running_hub(state_url, tmp_path, braze=_forward(url)) as hub,
    ):
        sink.faults = [500, 429, 503]
        events = [event() for _ in range(5)]
        assert post(hub.url, {"events": events}).status_code == 200
        wait_until(lambda: len(sink.ids()) == 5)
        assert sink.statuses[:4] == [500, 429, 503, 200]
        assert list_dead_letters(hub.hub.engine) == []


def test_a_refused_event_is_parked_and_costs_no_other(state_url, tmp_path):
    with (
        currents_sink() as (sink, url),
        running_hub(state_url, tmp_path, braze=_forward(url)) as hub,
    ):
        events = [event() for _ in range(4)]
        sink.refuse = {events[2]["id"]}
        assert post(hub.url, {"events": events}).status_code == 200
        wait_until(lambda: len(list_dead_letters(hub.hub.engine)) == 1)
        assert sorted(sink.ids()) == sorted(e["id"] for i, e in enumerate(events) if i != 2)
        [letter] = list_dead_letters(hub.hub.engine)
        assert events[2]["id"] in letter.payload.decode()
        assert "400" in letter.reason and FORWARD_TOKEN not in letter.reason


def test_failing_too_often_parks(state_url, tmp_path):
    options = _forward("http://127.0.0.1:9/unreachable", max_attempts=2)
    with running_hub(state_url, tmp_path, braze=options) as hub:
        assert post(hub.url, {"events": [event(), event()]}).status_code == 200
        wait_until(lambda: len(list_dead_letters(hub.hub.engine)) == 2)
