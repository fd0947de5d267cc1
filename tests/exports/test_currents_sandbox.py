"""The sandbox's Currents emitter: what it records (events and purchases from /users/track,
sends handed to it) reaches a real hub receiver and lands once; and it answers failures as
Braze's connector does (retry 5xx/429, split on 413, one by one on 400 dropping what is
refused again), in batches of at most 100."""

from __future__ import annotations

import httpx
import pytest
from currents_harness import TOKEN, currents_sink, landed, running_hub
from gateway_harness import wait_until

from headwater.sandbox.testing import run_sandbox
from headwater.state.currents import pending_events

TIME = "2024-05-02T10:00:00Z"


def _track(sandbox, events=(), purchases=()) -> None:
    answer = httpx.post(
        f"{sandbox.url}/users/track",
        json={"events": list(events), "purchases": list(purchases)},
        headers={"Authorization": f"Bearer {sandbox.key}"},
    )
    assert answer.status_code == 201, answer.text


def test_sandbox_events_land_in_the_hub(tmp_path):
    state = f"sqlite:///{tmp_path / 'state.db'}"
    with (
        running_hub(state, tmp_path / "landing") as hub,
        run_sandbox(currents_url=f"{hub.url}/currents/braze", currents_token=TOKEN) as sandbox,
    ):
        for start in range(0, 150, 75):
            _track(sandbox, events=[
                {"external_id": f"u{i}", "name": "opened_app", "time": TIME,
                 "properties": {"seq": i}} for i in range(start, start + 75)
            ])  # fmt: skip
        _track(sandbox, purchases=[{"external_id": "u1", "product_id": "sku", "price": 9.5,
                                    "currency": "EUR", "time": TIME}])  # fmt: skip
        sandbox.sandbox.currents.record_send(
            "email", {"external_user_id": "u1"}, {"campaign_id": "c1", "dispatch_id": "d1"}
        )
        assert sandbox.sandbox.currents.flush()
        assert sandbox.sandbox.currents.status()["posted"] == 152
        wait_until(
            lambda: pending_events(hub.hub.engine) == 0 and len(landed(tmp_path / "landing")) == 152
        )
        custom = landed(tmp_path / "landing", kind="users.behaviors.CustomEvent")
        assert sorted(r["external_user_id"] for r in custom) == sorted(f"u{i}" for i in range(150))
        assert all(r["name"] == "opened_app" and r["time"].year == 2024 for r in custom)
        [purchase] = landed(tmp_path / "landing", kind="users.behaviors.Purchase")
        assert (purchase["product_id"], purchase["price"], purchase["currency"]) == (
            "sku",
            9.5,
            "EUR",
        )
        [send] = landed(tmp_path / "landing", kind="users.messages.email.Send")
        assert (send["campaign_id"], send["dispatch_id"]) == ("c1", "d1")


@pytest.fixture
def emitting():
    with currents_sink() as (sink, url), run_sandbox() as sandbox:
        emitter = sandbox.sandbox.currents
        emitter.backoff = type(emitter.backoff)(base_seconds=0.01, cap_seconds=0.05)
        answer = httpx.post(f"{sandbox.url}/_sandbox/currents", json={"url": url, "token": "t"})
        assert answer.status_code == 200
        yield sandbox, sink, emitter


def test_batches_of_at_most_100_with_the_token_and_version(emitting):
    sandbox, sink, emitter = emitting
    for start in range(0, 300, 75):
        _track(sandbox, events=[{"external_id": f"u{i}", "name": "e", "time": TIME}
                                for i in range(start, start + 75)])  # fmt: skip
    assert emitter.flush()
    assert len(sink.ids()) == len(set(sink.ids())) == 300
    assert max(len(b["events"]) for b in sink.batches) <= 100
    assert sink.headers[0]["authorization"] == "Bearer t"
    assert sink.headers[0]["braze-currents-version"] == "1"


def test_5xx_and_429_are_retried_in_order(emitting):
    sandbox, sink, emitter = emitting
    sink.faults = [500, 429, 503]
    _track(sandbox, events=[{"external_id": f"u{i}", "name": "e", "time": TIME} for i in range(5)])
    assert emitter.flush()
    assert sink.statuses[:4] == [500, 429, 503, 200]
    assert len(sink.ids()) == 5 and emitter.status()["dropped"] == 0


def test_a_400_is_resent_one_by_one_and_the_refused_event_dropped(emitting):
    sandbox, sink, emitter = emitting
    emitter.linger_seconds = 1.0  # one batch of all five
    refused = []
    original = emitter.record

    def record(*args, **kwargs):
        original(*args, **kwargs)
        if len(refused) < 1:
            refused.append(emitter._queue[-1]["id"])

    emitter.record = record
    _track(sandbox, events=[{"external_id": f"u{i}", "name": "e", "time": TIME} for i in range(5)])
    sink.refuse = set(refused)
    assert emitter.flush()
    assert len(sink.ids()) == 4 and refused[0] not in sink.ids()
    assert emitter.status()["dropped"] == 1
    assert sink.statuses.count(400) == 2  # the batch, then the event alone


def test_a_413_is_split(emitting):
    sandbox, sink, emitter = emitting
    emitter.linger_seconds = 1.0
    sink.faults = [413]
    _track(sandbox, events=[{"external_id": f"u{i}", "name": "e", "time": TIME} for i in range(8)])
    assert emitter.flush()
    assert len(sink.ids()) == 8
    assert [len(b["events"]) for b in sink.batches] == [4, 4]


def test_the_control_api_checks_what_it_is_given(emitting):
    sandbox, _sink, _emitter = emitting
    for body in ({"url": "ftp://x"}, {"url": 1}, {"url": "http://x", "batch_size": 101},
                 {"url": "http://x", "token": {"a": 1}}):  # fmt: skip
        assert httpx.post(f"{sandbox.url}/_sandbox/currents", json=body).status_code == 400
    status = httpx.get(f"{sandbox.url}/_sandbox/currents").json()
    assert status["queued"] == 0 and "token" not in status


def test_a_trigger_send_is_emitted_as_a_send_event_for_each_user_it_reached(emitting):
    sandbox, sink, emitter = emitting
    headers = {"Authorization": f"Bearer {sandbox.key}"}
    declared = httpx.post(
        f"{sandbox.url}/_sandbox/campaigns", json={"id": "welcome", "name": "Welcome"}
    )
    assert declared.status_code in (200, 201), declared.text
    _track(sandbox, events=[{"external_id": "known", "name": "signed_up", "time": TIME}])
    answer = httpx.post(
        f"{sandbox.url}/campaigns/trigger/send",
        json={
            "campaign_id": "welcome",
            "recipients": [{"external_user_id": "known"}, {"external_user_id": "stranger"}],
        },
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    assert emitter.flush()
    sends = [
        e
        for b in sink.batches
        for e in b["events"]
        if e["event_type"] == "users.messages.email.Send"
    ]
    assert [e["user"]["external_user_id"] for e in sends] == ["known"]  # the stranger got none
    assert sends[0]["properties"]["campaign_id"] == "welcome"
    assert sends[0]["properties"]["dispatch_id"] == answer.json()["dispatch_id"]
