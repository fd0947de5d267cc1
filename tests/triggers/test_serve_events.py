"""Event triggers in serve: an event accepted at the gateway, delivered to Braze, fires
its trigger once, through the inbox written with the outbox's acknowledgement."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from gateway_harness import make_settings, running_gateway, wait_until  # noqa: E402

from headwater.config.triggers import TriggerConfig  # noqa: E402
from headwater.sandbox.testing import run_sandbox  # noqa: E402
from headwater.state import triggers as ledger  # noqa: E402

NOW = "2026-12-01T10:00:00Z"


def test_a_delivered_gateway_event_fires_its_trigger_once(tmp_path):
    with run_sandbox(key="k", campaigns=[{"id": "thanks", "name": "Thanks"}]) as braze:
        braze.seed(attributes=[{"external_id": "u1"}, {"external_id": "u2"}])
        settings = make_settings(f"sqlite:///{tmp_path / 's.db'}", {"braze": braze.url}, key="k")
        settings.triggers = {"thanks": TriggerConfig.model_validate({
            "when": {"stream": "gateway", "event": "referral_completed", "where": {"tier": "gold"}},
            "campaign_id": "thanks", "properties": {"amount": "{{ customer.amount }}"}})}  # fmt: skip
        with running_gateway(settings) as gw:
            key = gw.key("partner", "users.track")
            events = [
                {"external_id": "u1", "name": "referral_completed", "time": NOW,
                 "properties": {"tier": "gold", "amount": 5}},
                {"external_id": "u2", "name": "referral_completed", "time": NOW,
                 "properties": {"tier": "silver", "amount": 1}},
                {"external_id": "u2", "name": "other", "time": NOW, "properties": {"tier": "gold"}},
            ]  # fmt: skip
            answer = httpx.post(f"{gw.url}/users/track", json={"events": events},
                                headers={"Authorization": f"Bearer {key}"})  # fmt: skip
            assert answer.status_code == 201, answer.text

            def sent() -> list:
                return httpx.get(f"{braze.url}/_sandbox/sends").json()["sends"]

            wait_until(lambda: len(sent()) == 1)
            wait_until(lambda: ledger.take_inbox(gw.hub.engine) == [])
            (send,) = sent()
            assert [r["external_user_id"] for r in send["recipients"]] == ["u1"]
            assert send["recipients"][0]["properties"] == {"amount": 5}
            assert ledger.counts(gw.hub.engine)["thanks"][ledger.SENT] == 1
