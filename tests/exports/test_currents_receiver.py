"""The Currents receiver over a real socket: tokens on every batch, each event type landed
as its own table with unknown fields kept, once per id, and Braze's retry rules answered
(400 for a malformed batch, kept and never half landed; 413 to make Braze split)."""

from __future__ import annotations

import orjson
import pytest
from currents_harness import TOKEN, event, landed, post, running_hub
from gateway_harness import wait_until
from sqlalchemy import select

from headwater.state.currents import (
    currents_batches,
    currents_rejected,
    landed_stream,
    list_rejected,
    pending_events,
)
from headwater.state.currents_claims import claims_store, claims_table


@pytest.fixture(params=["sqlite", "postgres"])
def state_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def hub(state_url, tmp_path):
    with running_hub(state_url, tmp_path / "landing") as gateway:
        gateway.landing = tmp_path / "landing"
        yield gateway


def _known_ids(hub) -> set[str]:
    """Ids committed (pending or landed)."""
    with hub.hub.engine.connect() as conn:
        pending = conn.execute(select(currents_batches.c.ids)).scalars()
        ids = {i for blob in pending for i in orjson.loads(blob)}
    landed = claims_table(hub.hub.engine)
    with claims_store(hub.hub.engine).connect() as conn:
        return ids | set(conn.execute(select(landed.c.event_id)).scalars())


def _drained(hub) -> bool:
    return pending_events(hub.hub.engine) == 0


def test_every_batch_needs_the_token_even_an_empty_one(hub):
    for body in (b"", b'{"events": []}', b"not json", orjson.dumps({"events": [event()]})):
        for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
            answer = post(hub.url, None, token=token, raw=body)
            assert answer.status_code == 401
            assert TOKEN not in answer.text
    assert pending_events(hub.hub.engine) == 0
    assert list_rejected(hub.hub.engine) == []


@pytest.mark.parametrize("body", [b"", b"  ", b'{"events": []}'])
def test_an_empty_batch_with_the_token_is_a_no_op(hub, body):
    answer = post(hub.url, None, raw=body)
    assert answer.status_code == 200
    assert answer.json() == {"message": "success", "events": 0}


def test_an_unknown_receiver_is_404(hub):
    assert post(hub.url, {"events": [event()]}, name="nope").status_code == 404


def test_each_event_type_lands_as_its_own_table_unknown_ones_included(hub):
    custom = event(name="opened_app", app_id="a", custom_properties={"plan": "gold"}, new_field=1)
    purchase = event(
        "users.behaviors.Purchase", product_id="p1", price=12.5, currency="EUR",
        purchase_properties={"size": "M"},
    )  # fmt: skip
    email_open = event("users.messages.email.Open", campaign_id="c1", email_address="a@b.c")
    novel = event("users.brand.NewThing", whatever={"deep": [1, 2]})
    novel["new_top_level"] = True
    answer = post(hub.url, {"events": [custom, purchase, email_open, novel]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == 4
    wait_until(lambda: _drained(hub) and len(landed(hub.landing)) == 4)
    [row] = landed(hub.landing, kind="users.behaviors.CustomEvent")
    assert (row["id"], row["name"], row["app_id"]) == (custom["id"], "opened_app", "a")
    assert orjson.loads(row["custom_properties"]) == {"plan": "gold"}
    assert orjson.loads(row["extra"]) == {"properties": {"new_field": 1}}
    assert row["external_user_id"] == "u1" and row["timezone"] == "Europe/Paris"
    assert row["time"].timestamp() == 1_700_000_000
    [row] = landed(hub.landing, kind="users.behaviors.Purchase")
    assert (row["product_id"], row["price"], row["currency"]) == ("p1", 12.5, "EUR")
    [row] = landed(hub.landing, kind="users.messages.email.Open")
    assert (row["campaign_id"], row["email_address"]) == ("c1", "a@b.c")
    [row] = landed(hub.landing, kind="users.brand.NewThing")
    assert orjson.loads(row["extra"]) == {
        "properties": {"whatever": {"deep": [1, 2]}},
        "new_top_level": True,
    }


def test_a_documented_field_of_another_shape_is_kept_in_extra(hub):
    odd = event("users.behaviors.Purchase", product_id={"sku": 1}, price="12", currency="EUR")
    assert post(hub.url, {"events": [odd]}).status_code == 200
    wait_until(lambda: len(landed(hub.landing)) == 1)
    [row] = landed(hub.landing, kind="users.behaviors.Purchase")
    assert row["product_id"] is None and row["price"] is None and row["currency"] == "EUR"
    assert orjson.loads(row["extra"]) == {"properties": {"product_id": {"sku": 1}, "price": "12"}}


def test_an_event_resent_lands_once(hub):
    first = [event(event_id=f"e{i}") for i in range(10)]
    again = [event(event_id=f"e{i}") for i in range(5, 15)]
    for body in (
        {"events": first},
        {"events": first},
        {"events": again},
        {"events": first[:1] * 3},
    ):
        assert post(hub.url, body).status_code == 200
    wait_until(lambda: _drained(hub) and len(landed(hub.landing)) >= 15)
    wait_until(lambda: _drained(hub))
    ids = [r["id"] for r in landed(hub.landing)]
    assert sorted(ids) == sorted(f"e{i}" for i in range(15))
    # Counted as landed once each, per event type (the console's exports page).
    counted = hub.hub.counters.read(landed_stream("braze"))[landed_stream("braze")]
    assert counted == {"landed:users.behaviors.CustomEvent": 15}


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", '{"events": [...]}'),
        (b'{"events": {"a": 1}}', '{"events": [...]}'),
        (b'{"events": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "deeper than 1,024 levels"),
        (b'{"events": [{"event_type": "a.B", "id": 18446744073709551616000}]}', "events[0].id"),
    ],
)
def test_a_malformed_batch_gets_400_and_is_kept(hub, raw, reason):
    answer = post(hub.url, None, raw=raw)
    assert answer.status_code == 400
    assert reason in answer.json()["message"]
    [kept] = list_rejected(hub.hub.engine)
    assert kept["body"] == raw and kept["receiver"] == "braze" and reason in kept["reason"]


BAD_EVENTS = [
    "a string",
    {"id": "x"},
    {"event_type": "users.behaviors.CustomEvent"},
    {"event_type": "users.behaviors.CustomEvent", "id": {"an": "object"}},
    {"event_type": "users.behaviors.CustomEvent", "id": ""},
    {"event_type": "users.behaviors.CustomEvent", "id": "x" * 201},
    {"event_type": "users.behaviors.CustomEvent", "id": "nul\x00"},
    {"event_type": "../../etc", "id": "x"},
    {"event_type": "users.behaviors.CustomEvent", "id": "x", "time": 1e300},
    {"event_type": "users.behaviors.CustomEvent", "id": "x", "time": -1},
    {"event_type": "users.behaviors.CustomEvent", "id": "x", "time": True},
    {"event_type": "users.behaviors.CustomEvent", "id": "x", "time": "yesterday"},
    {"event_type": "users.behaviors.CustomEvent", "id": "x", "user": [1]},
    {"event_type": "users.behaviors.CustomEvent", "id": "x", "properties": "p"},
]


def test_one_malformed_event_costs_no_good_one(hub):
    """Braze's rule: on a 400 it resends the batch one event per request and drops only what
    is refused again. So the batch is refused whole (kept, nothing landed), and the good
    events land when they come back alone."""
    landed_ids = []
    for number, bad in enumerate(BAD_EVENTS, start=1):
        good = [event() for _ in range(3)]
        answer = post(hub.url, {"events": [good[0], bad, *good[1:]]})
        assert answer.status_code == 400, bad
        assert "events[1]" in answer.text
        assert not _known_ids(hub) & {e["id"] for e in good}  # never half landed
        # Braze's resend, one by one:
        statuses = [post(hub.url, {"events": [e]}).status_code for e in (good[0], bad, *good[1:])]
        assert statuses == [200, 400, 200, 200]
        assert len(list_rejected(hub.hub.engine, limit=1000)) == 2 * number  # batch + single
        landed_ids += [e["id"] for e in good]
    wait_until(lambda: _drained(hub) and len(landed(hub.landing)) == len(landed_ids))
    assert sorted(r["id"] for r in landed(hub.landing)) == sorted(landed_ids)


def test_over_100_events_is_413_so_braze_splits(hub):
    answer = post(hub.url, {"events": [event() for _ in range(101)]})
    assert answer.status_code == 413
    assert post(hub.url, {"events": [event() for _ in range(100)]}).status_code == 200


def test_a_body_over_the_limit_is_413(state_url, tmp_path):
    with running_hub(state_url, tmp_path, braze={"max_body_bytes": 1024 * 1024}) as gateway:
        big = event(name="x" * (1024 * 1024))
        assert post(gateway.url, {"events": [big]}).status_code == 413
        with gateway.hub.engine.connect() as conn:
            assert conn.execute(select(currents_rejected)).first() is None


def test_an_unknown_version_is_refused_and_kept(hub):
    import httpx

    answer = httpx.post(
        f"{hub.url}/currents/braze",
        content=orjson.dumps({"events": [event()]}),
        headers={"Authorization": f"Bearer {TOKEN}", "Braze-Currents-Version": "2"},
    )
    assert answer.status_code == 400
    assert len(list_rejected(hub.hub.engine)) == 1


def test_receivers_land_apart_with_their_own_token(state_url, tmp_path):
    with running_hub(state_url, tmp_path, prod={}, staging={}) as gateway:
        assert post(gateway.url, {"events": [event(event_id="same")]}, name="prod").is_success
        assert post(gateway.url, {"events": [event(event_id="same")]}, name="staging").is_success
        wait_until(lambda: len(landed(tmp_path, "prod")) == 1 == len(landed(tmp_path, "staging")))


def test_committed_before_the_answer(state_url, tmp_path):
    """Without workers nothing lands, yet the accepted batch is in the state store."""
    with running_hub(state_url, tmp_path, run_workers=False) as gateway:
        assert post(gateway.url, {"events": [event(), event()]}).status_code == 200
        assert pending_events(gateway.hub.engine) == 2


def test_hostile_but_well_formed_events_land(hub):
    """Floods of unknown keys, a key given twice (the last one counts, as when checked),
    odd characters in ids, extreme but valid numbers."""
    flood = event(**{f"key{i}": i for i in range(10_000)})
    twice = (
        b'{"events": [{"event_type": "users.behaviors.CustomEvent", "id": "first", '
        b'"id": "second", "properties": {"name": "a", "name": "b"}}], "events": '
        b'[{"event_type": "users.behaviors.CustomEvent", "id": "twice", "time": 0, '
        b'"properties": {"name": "kept"}}]}'
    )
    odd = event(event_id="quote' \"; DROP TABLE x; --\n\u00e9\u2028", price=1e308)
    huge = event("users.behaviors.Purchase", price=1.7976931348623157e308, product_id="p")
    assert post(hub.url, {"events": [flood, odd, huge]}).status_code == 200
    assert post(hub.url, None, raw=twice).status_code == 200
    wait_until(lambda: _drained(hub) and len(landed(hub.landing)) == 4)
    rows = {r["id"]: r for r in landed(hub.landing, kind="users.behaviors.CustomEvent")}
    assert set(rows) == {flood["id"], odd["id"], "twice"}
    assert len(orjson.loads(rows[flood["id"]]["extra"])["properties"]) == 10_000
    assert rows["twice"]["name"] == "kept"
    [purchase] = landed(hub.landing, kind="users.behaviors.Purchase")
    assert purchase["price"] == 1.7976931348623157e308
