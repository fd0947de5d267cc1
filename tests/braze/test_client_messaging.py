"""BrazeClient's trigger sends against the real sandbox: a dispatch_id back, refused
bodies never sent, and no resend when Braze may have processed a send."""

from __future__ import annotations

import httpx
import pytest

from headwater.braze.client import BrazeClient
from headwater.braze.errors import (
    BrazeRejectedError,
    BrazeSendInDoubtError,
    BrazeUnavailableError,
)
from headwater.braze.messaging import recipient_of
from headwater.braze.ratelimit import RateGovernor
from headwater.braze.retry import Backoff
from headwater.sandbox.testing import run_sandbox

FAST = Backoff(base_seconds=0.01, cap_seconds=0.05, retry_after_spread_seconds=0.01)
CAMPAIGNS = [{"id": "camp", "name": "Welcome"}]
CANVASES = [{"id": "canv", "name": "Onboarding"}]


@pytest.fixture(scope="module")
def sandbox():
    with run_sandbox(campaigns=CAMPAIGNS, canvases=CANVASES, seed=3) as running:
        yield running


def client_for(sandbox, **options) -> BrazeClient:
    return BrazeClient(sandbox.url, sandbox.key, backoff=FAST, governor=RateGovernor(),
                       max_concurrency=2, **options)  # fmt: skip


def recorded(sandbox) -> list[dict]:
    return httpx.get(f"{sandbox.url}/_sandbox/sends").json()["sends"]


@pytest.mark.anyio
async def test_trigger_campaign_and_canvas_return_the_dispatch_id(sandbox):
    sandbox.reset()
    sandbox.seed(attributes=[{"external_id": "u1"}])
    async with client_for(sandbox) as client:
        one = [recipient_of({"external_id": "u1"}, properties={"company": "Acme"})]
        dispatch = await client.trigger_campaign("camp", one, trigger_properties={"k": 1})
        canvas = [recipient_of({"external_id": "u1"}, properties={"c": 2}, kind=_canvas())]
        second = await client.trigger_canvas("canv", canvas)
    first, other = recorded(sandbox)
    assert first["dispatch_id"] == dispatch and other["dispatch_id"] == second
    assert first["recipients"][0]["properties"] == {"k": 1, "company": "Acme"}
    assert other["recipients"][0]["properties"] == {"c": 2}


def _canvas():
    from headwater.braze.messaging import CANVAS

    return CANVAS


@pytest.mark.anyio
async def test_a_body_braze_would_refuse_is_never_sent(sandbox):
    sandbox.reset()
    many = [{"external_user_id": f"u{i}"} for i in range(51)]
    async with client_for(sandbox) as client:
        with pytest.raises(BrazeRejectedError, match="not sent"):
            await client.trigger_campaign("camp", many)
        with pytest.raises(BrazeRejectedError, match="Invalid Campaign ID"):
            await client.trigger_campaign("unknown", many[:1])  # Braze's own refusal
    assert recorded(sandbox) == []
    assert sandbox.counters()["requests"].get("campaigns.trigger.send") is None


@pytest.mark.anyio
async def test_a_dropped_answer_is_in_doubt_and_not_resent(sandbox):
    sandbox.reset()
    sandbox.set_faults(drop_rate=1.0)
    try:
        async with client_for(sandbox, max_attempts=5) as client:
            with pytest.raises(BrazeSendInDoubtError, match="may have been sent"):
                await client.trigger_campaign("camp", [{"external_user_id": "u1"}])
    finally:
        sandbox.set_faults(drop_rate=0.0)


@pytest.mark.anyio
async def test_rate_limited_sends_are_refused_as_unavailable_with_nothing_sent(sandbox):
    sandbox.reset()
    sandbox.set_faults(rate_429=1.0)
    try:
        async with client_for(sandbox, max_attempts=1) as client:
            with pytest.raises(BrazeUnavailableError, match="nothing sent"):
                await client.trigger_campaign("camp", [{"external_user_id": "u1"}])
    finally:
        sandbox.set_faults(rate_429=0.0)
    assert recorded(sandbox) == []
