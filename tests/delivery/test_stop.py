"""Stopping delivery: rounds in flight finish while there is time; past the deadline they
hand their rows back at once (no lease left to expire, no attempt counted, nothing parked)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from gateway_harness import fake_braze, make_settings
from sqlalchemy import select

from headwater.delivery.worker import DeliveryWorker
from headwater.runtime.hub import Hub
from headwater.state.dead_letters import count_dead_letters
from headwater.state.outbox import Outbox, OutboxEntry, outbox

EVENTS = 150


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_state")
    return request.getfixturevalue("pg_url")


def _entries() -> list[OutboxEntry]:
    return [
        OutboxEntry("gateway:test", "braze", "events", orjson.dumps(
            {"external_id": f"u{i}", "name": "stop_test", "time": "2024-05-02T10:00:00Z"}
        ))
        for i in range(EVENTS)
    ]  # fmt: skip


def _rows(hub: Hub) -> list:
    with hub.engine.connect() as conn:
        return conn.execute(
            select(outbox.c.lease_until, outbox.c.attempts, outbox.c.available_at, outbox.c.objects)
        ).all()


async def _until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_past_the_deadline_rows_in_flight_go_back_ready_and_untried(state_url):
    with fake_braze(latency_seconds=5.0) as (fake, url):
        settings = make_settings(state_url, {"braze": url}, lease_seconds=300.0)

        async def scenario() -> None:
            hub = Hub(settings)
            try:
                await hub.outbox.enqueue(_entries())
                worker = DeliveryWorker(hub, settings.destinations["braze"])
                worker.start()
                await _until(lambda: worker._rounds)  # a round in flight, not just a claim
                await worker.stop(deadline=time.monotonic())
                rows = _rows(hub)
                assert sum(r.objects for r in rows) == EVENTS
                assert all(r.lease_until is None and r.attempts == 0 for r in rows)
                assert all(r.available_at <= time.time() for r in rows)
                assert count_dead_letters(hub.engine) == 0
                assert await hub.outbox.write(hub.outbox.release_owned) == 0
            finally:
                await hub.aclose()
                hub.engine.dispose()

        asyncio.run(scenario())
        assert fake.events("stop_test") == []


def test_before_the_deadline_rounds_in_flight_finish(sqlite_state):
    with fake_braze(latency_seconds=0.3) as (fake, url):
        settings = make_settings(sqlite_state, {"braze": url}, lease_seconds=300.0)

        async def scenario() -> None:
            hub = Hub(settings)
            try:
                await hub.outbox.enqueue(_entries())
                worker = DeliveryWorker(hub, settings.destinations["braze"])
                worker.start()
                await _until(lambda: worker._rounds)  # a round in flight, not just a claim
                await worker.stop(deadline=time.monotonic() + 60)
                assert _rows(hub) == []
            finally:
                await hub.aclose()
                hub.engine.dispose()

        asyncio.run(scenario())
        assert len(fake.events("stop_test")) == EVENTS


def test_release_owned_gives_back_only_this_processes_leases(state_url):
    settings = make_settings(state_url, {"braze": "http://127.0.0.1:9"}, lease_seconds=300.0)

    async def scenario() -> None:
        hub = Hub(settings)
        other = Outbox(hub.engine, lease_seconds=300.0)  # another process on the same store
        try:
            await hub.outbox.enqueue(_entries())
            taken = other.claim("braze", 75)
            mine = hub.outbox.claim("braze", 75)
            assert taken and mine
            assert hub.outbox.release_owned() == len(mine)
            assert [r.lease_until is not None for r in _rows(hub)].count(True) == len(taken)
        finally:
            other.close()
            await hub.aclose()
            hub.engine.dispose()

    asyncio.run(scenario())
