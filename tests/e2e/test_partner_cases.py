"""Every partner sample under tests/cases/ posted to a gateway on a real socket, delivered
to the real sandbox, and found there on the right profile, email included."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
from gateway_harness import make_settings, running_gateway, wait_until

from headwater.sandbox.testing import run_sandbox

CASES = Path(__file__).parent.parent / "cases"
PASSWORD = "extole-webhook-password-1"
STREAMS = {
    "extole": {
        "preset": "extole",
        "auth": {"type": "basic", "username": "extole", "password": PASSWORD},
        "reward_states": ["EARNED", "FULFILLED"],
    },
}


@pytest.fixture
def sandbox():
    with run_sandbox() as running:
        yield running


def _gateway(tmp_path, sandbox):
    settings = make_settings(
        f"sqlite:///{tmp_path / 'state.db'}", {"braze": sandbox.url}, STREAMS, key=sandbox.key
    )
    return running_gateway(settings)


def _hook(gw, body: object) -> httpx.Response:
    return httpx.post(f"{gw.url}/hooks/extole", json=body, auth=("extole", PASSWORD))


def _by_email(sandbox, email: str) -> list[dict]:
    return [u for u in sandbox.users() if (u.get("email") or "").lower() == email.lower()]


def test_every_extole_sample_arrives_in_the_sandbox(tmp_path, sandbox):
    samples = sorted((CASES / "extole").glob("*.json"))
    assert len(samples) >= 7
    with _gateway(tmp_path, sandbox) as gw:
        key = gw.key()
        for sample in samples:
            body = orjson.loads(sample.read_bytes())
            if "attributes" in body or "events" in body:  # Braze's own format
                answer = httpx.post(f"{gw.url}/users/track", json=body,
                                    headers={"Authorization": f"Bearer {key}"})  # fmt: skip
                assert answer.status_code == 201, (sample.name, answer.text)
            else:
                answer = _hook(gw, body)
                assert answer.status_code == 202, (sample.name, answer.text)
        wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=60)

    ada = sandbox.user("cust-1001")
    assert ada["email"] == "ada@example.com"
    assert ada["custom_attributes"]["extole_state"] == "LDN"  # never the reward's state
    events = ada["custom_events"]
    for name in ("extole_created_share_link", "extole_shared", "extole_subscribed",
                 "extole_reward_fulfilled"):  # fmt: skip
        assert events[name]["count"] == 1, name
    assert events["extole_reward_earned"]["count"] == 2  # the webhook and Extole's own post

    (grace,) = _by_email(sandbox, "grace@example.com")  # no partner_user_id: found by email
    assert grace["first_name"] == "Grace" and grace["last_name"] == "Hopper"
    assert grace["custom_events"]["extole_converted"]["count"] == 1


def test_an_email_only_person_is_one_alias_whatever_the_case_and_after_a_restart(tmp_path, sandbox):
    def converted(email: str, event_id: str) -> dict:
        return {"event_id": event_id, "event_name": "converted", "person": {"email": email},
                "event_time": "2024-05-03T09:00:00Z"}  # fmt: skip

    with _gateway(tmp_path, sandbox) as gw:
        for n, email in enumerate(("Nobody@Example.com", "nobody@example.com")):
            assert _hook(gw, converted(email, f"e{n}")).status_code == 202
            wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=30)
    with _gateway(tmp_path, sandbox) as gw:  # a restart: nothing cached in memory
        assert _hook(gw, converted(" NOBODY@example.com", "e3")).status_code == 202
        wait_until(lambda: gw.hub.outbox.depth() == 0, timeout=30)

    (nobody,) = _by_email(sandbox, "nobody@example.com")
    assert nobody["user_aliases"] == [{"alias_name": "nobody@example.com", "alias_label": "email"}]
    assert nobody["custom_events"]["extole_converted"]["count"] == 3
