"""Delivery gives rows back on the contract's retry schedule (braze.retry): full jitter
up to base x 2^attempts, capped, the same function every retrying part calls."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine

from headwater.braze.client import BrazeClient
from headwater.delivery.worker import DeliveryWorker
from headwater.runtime.settings import DeliverySettings, DestinationSettings


@pytest.fixture
def worker():
    settings = SimpleNamespace(
        delivery=DeliverySettings(retry_base_seconds=1.0, retry_max_seconds=10.0)
    )
    hub = SimpleNamespace(settings=settings, engine=create_engine("sqlite://"))
    destination = DestinationSettings(name="braze", url="http://127.0.0.1:9", api_key="k")
    return DeliveryWorker(hub, destination, client=BrazeClient("http://127.0.0.1:9", "k"))


@pytest.mark.parametrize(("draw", "attempts", "expected"), [
    (0.0, 0, 0.0),  # full jitter reaches zero: pools of workers do not come back together
    (0.5, 0, 0.5),
    (0.5, 2, 2.0),
    (0.999, 3, 7.992),
    (0.999, 10, 9.99),  # capped at retry_max_seconds
])  # fmt: skip
def test_rows_come_back_on_the_contracts_backoff(worker, draw, attempts, expected):
    worker.rng = lambda: draw
    assert worker._backoff(attempts) == pytest.approx(expected)
