"""The event inspector: bounded in bytes whatever partners post, large values cut with a
marker saying how much was left out, every outgoing object shown, secrets redacted by a
list users can extend."""

from __future__ import annotations

import httpx
import orjson
import pytest
from gateway_harness import fake_braze, make_settings, running_gateway, wait_until

from headwater.runtime.inspector import CUT_FIELDS, REDACTED, Inspector

BIG = 3_900_000  # bytes of one post: just under the gateway's 4 MB body limit


def _big_track(n: int) -> dict:
    return {"attributes": [{"external_id": f"u{n}", "tier": "gold"}], "note": "x" * BIG}


def test_fifty_large_posts_stay_within_the_byte_bound_with_cut_markers():
    inspector = Inspector(max_bytes=64 * 1024, payload_bytes=16 * 1024)
    for n in range(50):
        payload = _big_track(n)
        inspector.record("gateway", "in", payload, raw=orjson.dumps(payload), objects=1)
        assert inspector.bytes <= 64 * 1024
    events = inspector.recent("gateway", 50)
    assert 10 <= len(events) < 50  # the oldest went to keep the bound
    assert [e["payload"]["attributes"][0]["external_id"] for e in events[:2]] == ["u49", "u48"]
    newest = events[0]
    assert newest["truncated"] is True and newest["bytes"] > BIG
    assert newest["payload"]["attributes"] == [{"external_id": "u49", "tier": "gold"}]
    note = newest["payload"]["note"]
    assert len(note) < 16 * 1024 and note.endswith("more bytes cut]")
    assert int(note.rsplit("[", 1)[1].split()[0]) == BIG - note.index("…")
    assert len(orjson.dumps(events)) < 2 * 64 * 1024


def test_long_arrays_and_objects_are_cut_with_counts_and_walked_only_as_far_as_kept():
    inspector = Inspector(payload_bytes=4096)
    inspector.record("shop", "in", {"items": [{"n": n} for n in range(200_000)], "after": 1})
    inspector.record("shop", "in", {"wide": {f"field_{n}": n for n in range(50_000)}})
    wide_event, items_event = inspector.recent("shop")
    items = items_event["payload"]["items"]
    assert items[0] == {"n": 0} and items[-1].endswith("more items cut]")
    assert int(items[-1].strip("[").split()[0]) == 200_000 - (len(items) - 1)
    assert items_event["payload"][CUT_FIELDS] == "[1 more fields cut]"  # `after`
    wide = wide_event["payload"]["wide"]
    assert wide[CUT_FIELDS] == f"[{50_000 - (len(wide) - 1)} more fields cut]"
    for event in (items_event, wide_event):
        assert event["truncated"] and len(orjson.dumps(event["payload"])) < 2 * 4096


def test_small_payloads_are_kept_whole_and_entries_per_stream_are_capped():
    inspector = Inspector()
    inspector.configure("shop", 3)
    for n in range(5):
        inspector.record("shop", "in", {"n": n, "text": "y" * 1000})
    events = inspector.recent("shop")
    assert [e["payload"]["n"] for e in events] == [4, 3, 2]
    assert all("truncated" not in e and len(e["payload"]["text"]) == 1000 for e in events)
    assert inspector.bytes < 3 * 2000


@pytest.mark.parametrize(
    "field",
    ["password", "db_pwd", "PWD", "credentials", "client-credential", "private_key",
     "privateKey", "access_key_id", "AWS_ACCESS_KEY_ID", "api_token", "X-Api-Key",
     "stripe.secret", "Authorization", "session_cookie"],
)  # fmt: skip
def test_secret_looking_fields_are_redacted_whatever_their_case_or_separators(field):
    inspector = Inspector()
    inspector.record("shop", "in", {"data": {field: "hunter2", "city": "York"}})
    (event,) = inspector.recent("shop")
    assert event["payload"]["data"] == {field: REDACTED, "city": "York"}


def test_redacted_words_can_be_added_and_apply_to_cut_payloads_too():
    inspector = Inspector(redact=["ssn", "Date_Of_Birth"], payload_bytes=2048)
    small = {"customer_ssn": "123-45-6789", "dateOfBirth": "1990-01-01", "tier": "gold"}
    big = {**small, "note": "z" * 10_000}
    inspector.record("shop", "in", small)
    inspector.record("shop", "in", big)
    for event in inspector.recent("shop"):
        payload = event["payload"]
        assert payload["customer_ssn"] == REDACTED and payload["dateOfBirth"] == REDACTED
        assert payload["tier"] == "gold"


@pytest.fixture
def gateway(sqlite_state):
    with fake_braze() as (fake, url):
        settings = make_settings(sqlite_state, {"braze": url})
        settings.inspector = settings.inspector.model_copy(update={"redact": ["loyalty_pin"]})
        with running_gateway(settings) as gw:
            yield gw, fake


def _events(gw, limit: int = 50) -> httpx.Response:
    reader = gw.key("console", "streams.read")
    return httpx.get(
        f"{gw.url}/api/streams/gateway/events",
        params={"limit": limit},
        headers={"Authorization": f"Bearer {reader}"},
        timeout=60,
    )


def test_large_posts_keep_the_gateway_inspector_bounded_and_its_listing_small(gateway):
    gw, fake = gateway
    key = gw.key()
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        for n in range(12):
            answer = client.post(f"{gw.url}/users/track", content=orjson.dumps(_big_track(n)))
            assert answer.status_code == 201, answer.text
    assert gw.hub.inspector.bytes <= gw.hub.inspector.max_bytes
    assert gw.hub.inspector.bytes < 12 * 100 * 1024  # kept cut, not whole (12 x 3.9 MB)
    listing = _events(gw)
    assert listing.status_code == 200
    assert len(listing.content) < 12 * 100 * 1024
    incoming = [e for e in listing.json()["events"] if e["direction"] == "in"]
    assert len(incoming) == 12
    assert all(e["truncated"] and e["payload"]["note"].endswith("more bytes cut]")
               for e in incoming)  # fmt: skip


def test_every_object_of_an_outgoing_request_is_shown_with_secrets_redacted(gateway):
    gw, fake = gateway
    key = gw.key()
    body = {
        "attributes": [{"external_id": f"u{n}", "tier": "gold", "loyalty_pin": "4321",
                        "db_pwd": "x"} for n in range(3)],
        "events": [{"external_id": "u0", "name": f"e{n}", "time": "2024-05-01T10:00:00Z"}
                   for n in range(2)],
    }  # fmt: skip
    answer = httpx.post(
        f"{gw.url}/users/track", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 201
    wait_until(lambda: len(fake.events()) == 2 and len(fake.objects["attributes"]) == 3)
    wait_until(lambda: sum(e.get("objects", 0) for e in gw.hub.inspector.recent("gateway")
                           if e["direction"] == "out") == 5)  # fmt: skip
    listing = _events(gw)
    sent = [e for e in listing.json()["events"] if e["direction"] == "out"]
    attributes = [a for e in sent for a in e["payload"].get("attributes", [])]
    events = [v for e in sent for v in e["payload"].get("events", [])]
    assert sorted(a["external_id"] for a in attributes) == ["u0", "u1", "u2"]
    assert sorted(v["name"] for v in events) == ["e0", "e1"]
    assert all(e["accepted"] == e["objects"] and e["destination"] == "braze" for e in sent)
    assert "4321" not in listing.text and "loyalty_pin" in listing.text
    assert all(a["db_pwd"] == REDACTED for a in attributes)
