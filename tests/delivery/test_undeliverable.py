"""Nothing sits in the outbox forever: rows for a destination this project does not
configure, and rows that can never be sent, are parked in the dead-letter queue with a
clear reason and a log line, and their claim-mates are delivered as usual."""

from __future__ import annotations

import logging

import orjson
import pytest
from gateway_harness import fake_braze, make_settings, running_gateway, wait_until

from headwater.sandbox.testing import run_sandbox
from headwater.state.dead_letters import dead_letters, list_dead_letters, replay_dead_letters
from headwater.state.outbox import OPT_DEDUPE_ATTRIBUTES, outbox

NOW = "2024-05-02T10:00:00Z"


def _event(user: str, name: str = "e") -> bytes:
    return orjson.dumps({"external_id": user, "name": name, "time": NOW})


@pytest.fixture
def gateway(sqlite_state):
    with fake_braze() as (fake, url):
        settings = make_settings(sqlite_state, {"braze": url}, max_attempts=3)
        with running_gateway(settings) as gw:
            yield gw, fake


def _insert(gw, rows: list[dict]) -> None:
    """Rows written as intake would have written them (or as an older config left them)."""
    with gw.hub.engine.begin() as conn:
        conn.execute(
            outbox.insert(),
            [
                {"stream": "gateway:partner", "options": 0, "enqueued_at": 0.0,
                 "available_at": 0.0, "attempts": 0, **row, "objects": len(row["payload"].split(b"\n"))}
                for row in rows
            ],
        )  # fmt: skip
    gw.hub.outbox.subscribe().set()


def test_objects_for_a_destination_that_is_not_configured_are_parked_with_a_log_line(
    gateway, caplog
):
    gw, fake = gateway
    caplog.set_level(logging.WARNING, logger="headwater.delivery")
    _insert(gw, [
        {"destination": "nowhere", "kind": "events", "payload": _event("u1") + b"\n" + _event("u2")},
        {"destination": "braze", "kind": "events", "payload": _event("u3")},
    ])  # fmt: skip
    wait_until(lambda: gw.hub.outbox.depth() == 0 and len(list_dead_letters(gw.hub.engine)) == 2)
    letters = list_dead_letters(gw.hub.engine)
    assert {orjson.loads(letter.payload)["external_id"] for letter in letters} == {"u1", "u2"}
    for letter in letters:
        assert letter.destination == "nowhere"
        assert "'nowhere' is not configured" in letter.reason and "braze" in letter.reason
    assert [e["external_id"] for e in fake.events()] == ["u3"]
    assert gw.hub.counters.read()["gateway:partner"]["dead_lettered"] == 2
    assert any(
        "parked 2 objects for destination 'nowhere'" in r.getMessage() for r in caplog.records
    )
    # once the destination exists again (here: the letter pointed at it), replay sends them
    with gw.hub.engine.begin() as conn:
        conn.execute(dead_letters.update().values(destination="braze"))
    assert replay_dead_letters(gw.hub.engine) == 2
    gw.hub.outbox.subscribe().set()
    wait_until(lambda: len(fake.events()) == 3)


def test_rows_that_can_never_be_sent_are_parked_and_their_claim_mates_delivered(sqlite_state):
    with run_sandbox() as sandbox:
        settings = make_settings(sqlite_state, {"braze": sandbox.url}, key=sandbox.key)
        with running_gateway(settings) as gw:
            _never_sendable_rows(gw, sandbox)


def _never_sendable_rows(gw, sandbox):
    dedupe = OPT_DEDUPE_ATTRIBUTES
    _insert(gw, [
        {"destination": "braze", "kind": "bogus", "payload": _event("k1")},
        {"destination": "braze", "kind": "events",
         "payload": _event("e1") + b"\n" + b"not json" + b"\n" + b"{oops}" + b"\n" + _event("e2")},
        {"destination": "braze", "kind": "attributes", "options": dedupe,
         "payload": b'{"external_id": "a1", "tier": "gold"}\n{"external_id": \n[1, 2]'},
        {"destination": "braze", "kind": "events", "payload": _event("e3")},
    ])  # fmt: skip
    wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=20)
    users = {u["external_id"]: u for u in sandbox.users()}
    assert sorted(users) == ["a1", "e1", "e2", "e3"]
    assert all(users[e]["custom_events"]["e"]["count"] == 1 for e in ("e1", "e2", "e3"))
    assert users["a1"]["custom_attributes"] == {"tier": "gold"}
    reasons = {letter.payload: letter.reason for letter in list_dead_letters(gw.hub.engine)}
    assert set(reasons) == {_event("k1"), b"not json", b"{oops}", b'{"external_id": ', b"[1, 2]"}
    assert "'bogus' is not a /users/track array" in reasons[_event("k1")]
    assert reasons[b"not json"] == "cannot be sent: not a stored JSON object"
    assert reasons[b"[1, 2]"] == "cannot be sent: not a stored JSON object"
    assert "400" in reasons[b"{oops}"]  # sent as stored; the request was halved to find it
