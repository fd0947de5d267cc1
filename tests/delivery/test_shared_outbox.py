"""Several serve processes share one PostgreSQL outbox: each object is delivered once."""

from __future__ import annotations

import httpx
from gateway_harness import fake_braze, make_settings, running_gateway, wait_until

from headwater.state.keys import create_key


def test_two_gateways_on_one_postgres_outbox_deliver_each_event_once(pg_url):
    with fake_braze() as (fake, url):
        settings_a = make_settings(pg_url, {"braze": url}, claim_size=30)
        settings_b = make_settings(pg_url, {"braze": url}, claim_size=30)
        with running_gateway(settings_a) as a, running_gateway(settings_b) as b:
            key = create_key(a.hub.engine, "partner", ["users.track"])[1]
            auth = {"Authorization": f"Bearer {key}"}
            for n in range(20):
                gateway = a if n % 2 else b
                body = {"events": [
                    {"external_id": f"u{n}-{i}", "name": "shared", "time": "2024-05-02T10:00:00Z"}
                    for i in range(15)
                ]}  # fmt: skip
                answer = httpx.post(f"{gateway.url}/users/track", json=body, headers=auth)
                assert answer.status_code == 201
            wait_until(lambda: len(fake.events("shared")) >= 300, timeout=20)
            wait_until(lambda: a.hub.outbox.depth() == 0)
            users = [e["external_id"] for e in fake.events("shared")]
            assert len(users) == len(set(users)) == 300
            workers = [w for hub in (a.hub, b.hub) for w in hub.workers]
            assert all(w.delivered > 0 for w in workers)  # both processes took part


def test_rows_for_an_unconfigured_destination_are_parked_on_postgres_too(pg_url):
    from sqlalchemy import insert

    from headwater.state.dead_letters import list_dead_letters
    from headwater.state.outbox import outbox

    with fake_braze() as (fake, url):
        settings = make_settings(pg_url, {"braze": url})
        with running_gateway(settings) as gw:
            with gw.hub.engine.begin() as conn:
                conn.execute(insert(outbox), [
                    {"stream": "gateway:partner", "destination": destination, "kind": "events",
                     "payload": b'{"external_id":"u","name":"e","time":"2024-05-02T10:00:00Z"}',
                     "objects": 1, "options": 0, "enqueued_at": 0.0, "available_at": 0.0,
                     "attempts": 0}
                    for destination in ("gone", "braze")
                ])  # fmt: skip
            wait_until(lambda: gw.hub.outbox.depth() == 0 and list_dead_letters(gw.hub.engine))
            (letter,) = list_dead_letters(gw.hub.engine)
            assert letter.destination == "gone" and "not configured" in letter.reason
            assert len(fake.events("e")) == 1
