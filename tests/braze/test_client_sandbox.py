"""BrazeClient against the Braze-compatible sandbox: real validation, storage and faults."""

from __future__ import annotations

import pytest

from headwater.braze.client import BrazeClient, ItemResult, TrackItem
from headwater.braze.errors import BrazeRejectedError
from headwater.braze.ratelimit import RateGovernor
from headwater.braze.retry import Backoff

sandbox_testing = pytest.importorskip("headwater.sandbox.testing")

FAST = Backoff(base_seconds=0.01, cap_seconds=0.05, retry_after_spread_seconds=0.01)


def client_for(sandbox, **options) -> BrazeClient:
    options.setdefault("max_attempts", 10)
    return BrazeClient(sandbox.url, options.pop("key", sandbox.key), backoff=FAST,
                       governor=RateGovernor(), max_concurrency=4, **options)  # fmt: skip


def contacts(n: int) -> list[TrackItem]:
    return [
        TrackItem("attributes", {"external_id": f"c{i}", "loyalty_points": i}, f"row-{i}")
        for i in range(n)
    ]


@pytest.mark.anyio
async def test_track_lands_profiles_in_the_sandbox_and_maps_its_object_errors_to_rows():
    items = contacts(100)
    items[7].payload["email"] = "not an email"
    results: dict = {}

    def collect(batch: list[ItemResult]) -> None:
        results.update({r.ref: r for r in batch})

    with sandbox_testing.run_sandbox() as sandbox:
        async with client_for(sandbox) as client:
            summary = await client.track(items, on_results=collect)
        stored = sandbox.user("c42")
    assert not results["row-7"].ok and results["row-7"].error
    assert sum(r.ok for r in results.values()) == 99 and summary.failed == 1
    assert stored is not None


@pytest.mark.anyio
async def test_track_gets_everything_through_a_sandbox_having_a_bad_day():
    with sandbox_testing.run_sandbox(seed=7) as sandbox:
        sandbox.set_rate_limit("users.track", 1000, 0.5)  # a 429 then means a short pause
        sandbox.set_faults(rate_429=0.2, rate_5xx=0.2, drop_rate=0.1)
        # ~half of all requests fail here: 20 attempts make a batch giving up (which this
        # test would count as a failure) a one-in-a-million event per batch, not 1 in 1,000.
        async with client_for(sandbox, max_attempts=20) as client:
            summary = await client.track(contacts(600))
        sandbox.set_faults(rate_429=0, rate_5xx=0, drop_rate=0)
        users = sandbox.users()
    assert summary.accepted == 600 and summary.failed == 0
    assert summary.retries > 0
    assert {u.get("external_id") for u in users} >= {f"c{i}" for i in range(600)}


@pytest.mark.anyio
async def test_a_wrong_key_is_refused_by_the_sandbox_without_leaking_it():
    wrong = "wrong-key-0123456789abcdef"
    with sandbox_testing.run_sandbox() as sandbox:
        async with client_for(sandbox, key=wrong) as client:
            with pytest.raises(BrazeRejectedError) as raised:
                await client.track(contacts(3))
    assert raised.value.status == 401 and wrong not in str(raised.value)
