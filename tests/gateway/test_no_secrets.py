"""No secret (partner key, webhook password, destination key) reaches logs, error bodies
or dead-letter reasons, even when every one of them is used wrongly."""

from __future__ import annotations

import logging

import httpx
from gateway_harness import fake_braze, make_settings, running_gateway, wait_until

from headwater.state.dead_letters import list_dead_letters

DESTINATION_KEY = "destination-key-that-is-wrong-0001"
WEBHOOK_PASSWORD = "webhook-password-0002"
STREAMS = {
    "extole": {
        "preset": "extole",
        "auth": {"type": "basic", "username": "extole", "password": WEBHOOK_PASSWORD},
    }
}


def test_secrets_stay_out_of_logs_errors_and_dead_letters(sqlite_state, caplog):
    caplog.set_level(logging.DEBUG)
    with fake_braze() as (fake, url):
        settings = make_settings(sqlite_state, {"braze": url}, STREAMS, key=DESTINATION_KEY,
                                 max_attempts=2)  # fmt: skip
        assert DESTINATION_KEY not in repr(settings)
        with running_gateway(settings) as gw:
            key = gw.key("extole")
            near_miss = key[:-3] + "xyz"
            denied = httpx.post(f"{gw.url}/users/track", json={},
                                headers={"Authorization": f"Bearer {near_miss}"})  # fmt: skip
            assert denied.status_code == 401
            wrong_password = httpx.post(
                f"{gw.url}/hooks/extole", json={"event_name": "shared"},
                auth=("extole", WEBHOOK_PASSWORD + "x"),
            )  # fmt: skip
            assert wrong_password.status_code == 401
            accepted = httpx.post(
                f"{gw.url}/users/track",
                json={
                    "events": [{"external_id": "u1", "name": "e", "time": "2024-05-02T10:00:00Z"}]
                },
                headers={"Authorization": f"Bearer {key}"},
            )
            assert accepted.status_code == 201
            # The destination refuses our (wrong) key: the object is retried, then parked.
            wait_until(lambda: list_dead_letters(gw.hub.engine), timeout=20)
            reasons = " ".join(d.reason for d in list_dead_letters(gw.hub.engine))
            bodies = denied.text + wrong_password.text + accepted.text
    assert fake.status_counts.get(401)
    for secret in (key, near_miss, WEBHOOK_PASSWORD, DESTINATION_KEY):
        assert secret not in caplog.text
        assert secret not in bodies
        assert secret not in reasons
