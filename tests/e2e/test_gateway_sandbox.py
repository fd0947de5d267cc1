"""The gateway against the real sandbox: faults lose nothing, identities resolve through
/users/export/ids and /users/alias/new, and unchanged attributes cost no data points."""

from __future__ import annotations

import httpx
import pytest
from gateway_harness import SHOP_STREAM, make_settings, running_gateway, wait_until

from headwater.sandbox.testing import run_sandbox
from headwater.state.dead_letters import list_dead_letters

NOW = "2024-05-02T10:00:00Z"
STREAMS = {
    "shop": SHOP_STREAM,
}  # fmt: skip


@pytest.fixture
def sandbox():
    with run_sandbox() as running:
        yield running


def _gateway(tmp_path, sandbox, **delivery):
    settings = make_settings(
        f"sqlite:///{tmp_path / 'state.db'}", {"braze": sandbox.url}, STREAMS, key=sandbox.key,
        **delivery,
    )  # fmt: skip
    return running_gateway(settings)


def _event_counts(sandbox, name: str) -> dict[str, int]:
    counts = {}
    for user in sandbox.users():
        event = (user.get("custom_events") or {}).get(name)
        if event:
            counts[user.get("external_id")] = event["count"]
    return counts


def test_429_storms_5xx_and_latency_lose_nothing(tmp_path, sandbox):
    sandbox.set_faults(rate_429=0.3, rate_5xx=0.2, latency_ms=5)
    with _gateway(tmp_path, sandbox, max_attempts=20) as gw:
        key = gw.key()
        for batch in range(8):
            body = {"events": [{"external_id": f"u{batch}-{i}", "name": "stormy", "time": NOW}
                               for i in range(50)]}  # fmt: skip
            answer = httpx.post(f"{gw.url}/users/track", json=body,
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            assert answer.status_code == 201
        wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=60)
        assert list_dead_letters(gw.hub.engine) == []
    counts = _event_counts(sandbox, "stormy")
    assert set(counts) == {f"u{b}-{i}" for b in range(8) for i in range(50)}
    assert all(count == 1 for count in counts.values())


def test_email_only_events_land_on_the_existing_user_or_a_new_alias(tmp_path, sandbox):
    sandbox.seed(attributes=[{"external_id": "cust-1", "email": "ada@example.com"}])
    with _gateway(tmp_path, sandbox) as gw:
        for email in ("ada@example.com", "new@example.com"):
            answer = httpx.post(
                f"{gw.url}/hooks/shop", json={"email": email, "type": "visit", "at": NOW},
                headers={"Authorization": "Bearer shop-token"},
            )  # fmt: skip
            assert answer.status_code == 202
        wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=20)
    users = sandbox.users()
    ada = next(u for u in users if u.get("external_id") == "cust-1")
    assert ada["custom_events"]["visit"]["count"] == 1
    aliased = [u for u in users if {"alias_name": "new@example.com", "alias_label": "shop_email"}
               in (u.get("user_aliases") or [])]  # fmt: skip
    assert len(aliased) == 1
    assert aliased[0]["custom_events"]["visit"]["count"] == 1


def test_unchanged_attributes_cost_no_data_points(tmp_path, sandbox):
    with _gateway(tmp_path, sandbox) as gw:
        key = gw.key()
        body = {
            "attributes": [{"external_id": f"u{i}", "tier": "gold", "score": i} for i in range(20)]
        }
        for _ in range(3):
            answer = httpx.post(f"{gw.url}/users/track", json=body,
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            assert answer.status_code == 201
            wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=20)
        saved = gw.hub.counters.read()["gateway:partner"]["data_points_saved"]
    assert saved == 2 * 20 * 2  # two re-sends of two unchanged attributes for 20 users
    assert sandbox.counters()["data_points"] == 20 * 2
