"""Pausing a stream from the console: its partner's posts are still accepted, held in the
outbox and not delivered; resuming delivers them, in order. Real sockets, a real sandbox."""

from __future__ import annotations

import httpx
from gateway_harness import wait_until
from tests.console.test_console_http import csrf_of, login

from headwater.state.outbox import outbox
from headwater.state.pauses import held_rows, list_pauses

SHOP = {"Authorization": "Bearer shop-token-5"}


def _post_shop(console, user: str, city: str) -> None:
    answer = httpx.post(f"{console.url}/hooks/shop", json={"user": user, "city": city},
                        headers=SHOP)  # fmt: skip
    assert answer.status_code < 300, answer.text  # the partner sees no change


def _track(console, key: str, user: str) -> None:
    body = {"attributes": [{"external_id": user, "city": "Leeds"}]}
    answer = httpx.post(f"{console.url}/users/track", json=body,
                        headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert answer.status_code == 201, answer.text


def test_a_paused_stream_holds_its_events_and_resume_delivers_them(console):
    client = login(console.url)
    engine = console.gw.hub.engine
    marker_key = console.gw.key("marker")
    paused = client.post("/console/streams/shop/pause", data={"csrf": csrf_of(client)})
    assert paused.status_code == 303 and "shop" in list_pauses(engine)
    page = client.get("/console/streams/shop").text
    assert "paused" in page and "Resume stream" in page
    assert '<span class="paused">paused</span>' in client.get("/console/").text

    for n in range(3):
        _post_shop(console, f"held-{n}", f"City {n}")
    # A later object for the same destination, on a stream that is not paused: once it
    # has arrived, delivery has been past the held ones (it claims in id order).
    _track(console, marker_key, "marker-1")
    wait_until(lambda: console.sandbox.user("marker-1") is not None)
    assert all(console.sandbox.user(f"held-{n}") is None for n in range(3))
    assert held_rows(engine, "shop") >= 1
    with engine.connect() as conn:
        assert conn.execute(outbox.select().where(outbox.c.stream == "shop")).first()
    assert "outbox row(s) held" in client.get("/console/streams/shop").text

    resumed = client.post("/console/streams/shop/resume", data={"csrf": csrf_of(client)})
    assert resumed.status_code == 303 and "shop" not in list_pauses(engine)
    wait_until(lambda: all(console.sandbox.user(f"held-{n}") for n in range(3)))
    assert console.sandbox.user("held-2")["custom_attributes"]["city"] == "City 2"
    assert held_rows(engine, "shop") == 0
    assert "Pause stream" in client.get("/console/streams/shop").text


def test_pausing_the_gateway_holds_every_partner_key(console):
    client = login(console.url)
    key = console.gw.key("partner-a")
    client.post("/console/streams/gateway/pause", data={"csrf": csrf_of(client)})
    _track(console, key, "gw-held")
    _post_shop(console, "shop-marker", "Bath")
    wait_until(lambda: console.sandbox.user("shop-marker") is not None)
    assert console.sandbox.user("gw-held") is None
    client.post("/console/streams/gateway/resume", data={"csrf": csrf_of(client)})
    wait_until(lambda: console.sandbox.user("gw-held") is not None)


def test_a_read_only_user_cannot_pause(console):
    reader = login(console.url, "reader", "only looking here")
    answer = reader.post("/console/streams/shop/pause", data={"csrf": csrf_of(reader)})
    assert answer.status_code == 403 and not list_pauses(console.gw.hub.engine)


def test_a_key_with_streams_write_pauses_and_resumes_a_stream_over_the_api(console):
    """The same pause for scripts and runbooks: POST /api/streams/NAME/pause|resume with a
    key holding streams.write; a key without it is refused."""
    engine = console.gw.hub.engine
    api = f"{console.url}/api/streams/shop"
    reader = {"Authorization": f"Bearer {console.gw.key('reader', 'streams.read')}"}
    refused = httpx.post(f"{api}/pause", headers=reader)
    assert refused.status_code == 403 and "shop" not in list_pauses(engine)
    writer = {"Authorization": f"Bearer {console.gw.key('ops', 'streams.write')}"}
    assert httpx.post(f"{console.url}/api/streams/nope/pause", headers=writer).status_code == 404

    paused = httpx.post(f"{api}/pause", headers=writer)
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and list_pauses(engine)["shop"].paused_by == "key ops"
    _post_shop(console, "api-held", "Hull")
    marker_key = console.gw.key("marker-api")
    _track(console, marker_key, "marker-api")
    wait_until(lambda: console.sandbox.user("marker-api") is not None)
    assert console.sandbox.user("api-held") is None

    resumed = httpx.post(f"{api}/resume", headers=writer)
    assert resumed.status_code == 200 and resumed.json()["released"] >= 1
    wait_until(lambda: console.sandbox.user("api-held") is not None)
    assert "shop" not in list_pauses(engine)
