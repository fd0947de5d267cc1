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
