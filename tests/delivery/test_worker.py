"""Delivery: unchanged attributes are dropped, email-only users are resolved, faults are
retried without loss, and poison objects are parked with their reason and can be replayed."""

from __future__ import annotations

import httpx
import pytest
from gateway_harness import SHOP_STREAM, fake_braze, make_settings, running_gateway, wait_until

from headwater.state.dead_letters import list_dead_letters, replay_dead_letters

NOW = "2024-05-02T10:00:00Z"
STREAMS = {
    "shop": SHOP_STREAM,
    "noresolve": {
        "preset": "generic",
        "auth": {"type": "bearer", "token": "nr-token"},
        "resolve_email": False,
        "dedupe_attributes": False,
        "mapping": {"attributes": [{"external_id": "{{ user }}", "tier": "{{ tier }}"}]},
    },
}  # fmt: skip


def _track(gw, key, body):
    answer = httpx.post(
        f"{gw.url}/users/track", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 201, answer.text
    return answer


@pytest.fixture
def setup(sqlite_state):
    with fake_braze() as (fake, url):
        settings = make_settings(sqlite_state, {"braze": url}, STREAMS, max_attempts=3)
        with running_gateway(settings) as gw:
            yield gw, fake


def test_unchanged_attributes_are_not_sent_again_and_savings_are_counted(setup):
    gw, fake = setup
    key = gw.key()
    first = {
        "attributes": [
            {"external_id": "u1", "tier": "gold", "city_name": "Leeds", "visits": {"inc": 1}}
        ]
    }
    _track(gw, key, first)
    wait_until(lambda: len(fake.objects["attributes"]) == 1)
    _track(
        gw,
        key,
        {
            "attributes": [
                {"external_id": "u1", "tier": "gold", "city_name": "York", "visits": {"inc": 1}}
            ]
        },
    )
    wait_until(lambda: len(fake.objects["attributes"]) == 2)
    assert fake.objects["attributes"][1] == {
        "external_id": "u1",
        "city_name": "York",
        "visits": {"inc": 1},
    }
    _track(gw, key, {"attributes": [{"external_id": "u1", "tier": "gold", "city_name": "York"}]})
    wait_until(lambda: gw.hub.outbox.depth() == 0)
    assert len(fake.objects["attributes"]) == 2  # nothing changed: nothing sent
    reader = gw.key("console", "streams.read")
    stats = httpx.get(f"{gw.url}/api/streams/gateway/stats",
                      headers={"Authorization": f"Bearer {reader}"}).json()  # fmt: skip
    assert stats["counters"]["data_points_saved"] == 3
    assert stats["counters"]["objects_skipped_unchanged"] == 1
    metrics = gw.metrics()
    assert (
        'headwater_stream_objects_total{counter="data_points_saved",stream="gateway:partner"} 3.0'
        in metrics
    )
    assert "headwater_outbox_depth 0" in metrics


def test_dedupe_can_be_switched_off_per_stream(setup):
    gw, fake = setup
    for _ in range(2):
        answer = httpx.post(
            f"{gw.url}/hooks/noresolve", json={"user": "u1", "tier": "gold"},
            headers={"Authorization": "Bearer nr-token"},
        )  # fmt: skip
        assert answer.status_code == 202
        wait_until(lambda: gw.hub.outbox.depth() == 0)
    assert len(fake.objects["attributes"]) == 2


def test_email_only_event_is_resolved_to_the_existing_user(setup):
    gw, fake = setup
    fake.users_by_email["ada@example.com"] = {"external_id": "cust-1", "braze_id": "b1"}
    for at in ("2024-05-02T10:00:00Z", "2024-05-02T11:00:00Z"):
        httpx.post(
            f"{gw.url}/hooks/shop", json={"email": "ada@example.com", "type": "visit", "at": at},
            headers={"Authorization": "Bearer shop-token"},
        )  # fmt: skip
    wait_until(lambda: len(fake.events("visit")) == 2)
    assert all(e["external_id"] == "cust-1" and "email" not in e for e in fake.events("visit"))
    assert fake.export_calls == 1  # the second lookup came from the cache


def test_unknown_email_gets_a_user_alias(setup):
    gw, fake = setup
    httpx.post(
        f"{gw.url}/hooks/shop", json={"email": "new@example.com", "type": "visit", "at": NOW},
        headers={"Authorization": "Bearer shop-token"},
    )  # fmt: skip
    wait_until(lambda: fake.events("visit"))
    alias = {"alias_name": "new@example.com", "alias_label": "shop_email"}
    assert fake.aliases == [alias]
    assert fake.events("visit")[0]["user_alias"] == alias


def test_429_and_5xx_storms_lose_nothing(setup):
    gw, fake = setup
    key = gw.key()
    fake.faults.extend([429, 500, 503, 429, 502, 429])
    for batch in range(4):
        _track(
            gw,
            key,
            {
                "events": [
                    {"external_id": f"u{batch}-{i}", "name": "e", "time": NOW} for i in range(30)
                ]
            },
        )
    wait_until(lambda: len(fake.events("e")) >= 120, timeout=20)
    wait_until(lambda: gw.hub.outbox.depth() == 0)
    assert sorted({e["external_id"] for e in fake.events("e")}) == sorted(
        f"u{b}-{i}" for b in range(4) for i in range(30)
    )
    assert list_dead_letters(gw.hub.engine) == []


def test_object_braze_rejects_is_parked_with_reason_and_the_rest_delivered(setup):
    gw, fake = setup
    key = gw.key()
    fake.reject_event_names.add("poison")
    _track(gw, key, {"events": [
        {"external_id": "u1", "name": "poison", "time": NOW},
        {"external_id": "u2", "name": "fine", "time": NOW},
    ]})  # fmt: skip
    wait_until(lambda: fake.events("fine") and list_dead_letters(gw.hub.engine))
    (letter,) = list_dead_letters(gw.hub.engine)
    assert letter.reason == "injected rejection"
    assert letter.stream == "gateway:partner"
    fake.reject_event_names.clear()
    assert replay_dead_letters(gw.hub.engine, [letter.id]) == 1
    gw.hub.outbox.subscribe().set()
    wait_until(lambda: fake.events("poison"))
    assert list_dead_letters(gw.hub.engine) == []
    assert len(list_dead_letters(gw.hub.engine, include_replayed=True)) == 1


def test_object_failing_every_attempt_is_parked_after_max_attempts(setup):
    gw, fake = setup
    key = gw.key()
    fake.faults.extend([503] * 50)
    _track(gw, key, {"events": [{"external_id": "u1", "name": "late", "time": NOW}]})
    wait_until(lambda: list_dead_letters(gw.hub.engine), timeout=20)
    (letter,) = list_dead_letters(gw.hub.engine)
    assert letter.reason.startswith("failed 3 times; last error: gave up after")
    assert fake.events("late") == []


def test_tries_inside_a_round_are_the_destinations(sqlite_state):
    """destinations.<name>.max_attempts: four tries per request ride out three 503s in one
    round, where a worker with its own fixed number of tries gave the round up."""
    with fake_braze() as (fake, url):
        settings = make_settings(
            sqlite_state,
            {"braze": url},
            STREAMS,
            destination={"max_attempts": 4, "retry_base_seconds": 0.01},
            max_attempts=1,  # one round only: what the round's tries do not deliver is parked
        )
        with running_gateway(settings) as gw:
            fake.faults.extend([503, 503, 503])
            _track(gw, gw.key(), {"events": [{"external_id": "u1", "name": "e", "time": NOW}]})
            wait_until(lambda: fake.events("e") or list_dead_letters(gw.hub.engine), timeout=60)
            assert list_dead_letters(gw.hub.engine) == []
            assert [e["external_id"] for e in fake.events("e")] == ["u1"]
            assert fake.status_counts[503] == 3


def test_a_round_that_exhausts_the_destinations_tries_gives_the_row_back(sqlite_state):
    with fake_braze() as (fake, url):
        settings = make_settings(
            sqlite_state,
            {"braze": url},
            STREAMS,
            destination={"max_attempts": 2, "retry_base_seconds": 0.01},
            max_attempts=1,
        )
        with running_gateway(settings) as gw:
            fake.faults.extend([503, 503, 503])
            _track(gw, gw.key(), {"events": [{"external_id": "u1", "name": "e", "time": NOW}]})
            wait_until(lambda: list_dead_letters(gw.hub.engine), timeout=60)
            (letter,) = list_dead_letters(gw.hub.engine)
            assert letter.reason.startswith("failed 1 times; last error: gave up after")
            assert fake.status_counts[503] == 2
            assert fake.events("e") == []


def test_a_row_settles_object_by_object_and_comes_back_with_only_what_failed(sqlite_state, clock):
    """One row, three outcomes: delivered objects leave, the rejected one is parked, the
    one that hit an outage comes back alone for a later try (its attempt counted)."""
    import asyncio

    from sqlalchemy import select

    from headwater.delivery.worker import DeliveryWorker, _Round
    from headwater.runtime.hub import Hub
    from headwater.state.outbox import OutboxEntry, outbox

    settings = make_settings(sqlite_state, {"braze": "http://127.0.0.1:9"}, run_workers=False)
    hub = Hub(settings)
    hub.outbox.clock = clock  # backoffs pass when the test says
    worker = DeliveryWorker(hub, settings.destinations["braze"])

    async def main():
        await hub.outbox.enqueue([
            OutboxEntry("gateway:partner", "braze", "events", f'{{"n":{n}}}'.encode())
            for n in range(4)
        ])  # fmt: skip
        (row,) = hub.outbox.claim("braze", 100)
        batch = _Round([row])
        (state,) = batch.states
        state.delivered(0)
        state.park(1, "bad value")
        state.failed(2, "gave up after 3 attempts: 503")
        await worker._settle(batch)  # index 3 still open: nothing is settled yet
        assert hub.outbox.depth() == 4
        state.delivered(3)
        await worker._settle(batch)
        await worker.client.aclose()

    asyncio.run(main())
    with hub.engine.connect() as conn:  # given back with a backoff, not for at once
        (waiting,) = conn.execute(select(outbox.c.available_at, outbox.c.enqueued_at)).all()
    assert waiting.available_at > waiting.enqueued_at
    assert hub.outbox.claim("braze", 100) == []  # waiting for its backoff
    clock.advance(settings.delivery.retry_max_seconds)
    (again,) = hub.outbox.claim("braze", 100)
    assert again.decode() == [{"n": 2}] and again.attempts == 1
    (letter,) = list_dead_letters(hub.engine)
    assert (letter.payload, letter.reason) == (b'{"n":1}', "bad value")
    assert hub.counters.read()["gateway:partner"] == {"delivered": 2, "dead_lettered": 1}
    assert worker.delivered == 2 and worker.parked == 1
    hub.outbox.close()


def test_a_round_that_dies_mid_send_settles_what_braze_accepted(sqlite_state, clock):
    """An unexpected error after some requests were answered: what Braze accepted leaves
    the outbox (it must not be sent twice), the rest comes back for another try."""
    import asyncio

    from headwater.braze.batching import ItemResult
    from headwater.delivery.worker import DeliveryWorker
    from headwater.runtime.hub import Hub
    from headwater.state.outbox import OutboxEntry

    class DiesAfterTwo:
        async def track(self, items, *, on_results=None, progress=None):
            items = list(items)
            await on_results([ItemResult(item.ref, True) for item in items[:2]])
            raise RuntimeError("connection pool broke")

        async def aclose(self) -> None:
            pass

    settings = make_settings(sqlite_state, {"braze": "http://127.0.0.1:9"}, run_workers=False)
    hub = Hub(settings)
    hub.outbox.clock = clock  # backoffs pass when the test says
    worker = DeliveryWorker(hub, settings.destinations["braze"], client=DiesAfterTwo())

    async def main():
        await hub.outbox.enqueue([
            OutboxEntry("gateway:partner", "braze", "events", f'{{"n":{n}}}'.encode())
            for n in range(5)
        ])  # fmt: skip
        rows = hub.outbox.claim("braze", 100)
        await worker._slots.acquire()
        await worker._round(rows)

    asyncio.run(main())
    assert hub.counters.read()["gateway:partner"] == {"delivered": 2}
    assert hub.outbox.claim("braze", 100) == []  # waiting for its backoff
    clock.advance(settings.delivery.retry_max_seconds)
    (again,) = hub.outbox.claim("braze", 100)
    assert again.decode() == [{"n": 2}, {"n": 3}, {"n": 4}] and again.attempts == 1
    hub.outbox.close()
    hub.lock.release()


def test_a_round_whose_settling_fails_keeps_what_was_settled_and_what_braze_answered(
    sqlite_state, monkeypatch
):
    """Settling fails after one row was already given back trimmed, and after Braze
    accepted the other row: the trimmed row is not given back again (its attempt counted
    twice), and the accepted objects are not put back to be sent again."""
    import asyncio

    from headwater.braze.batching import ItemResult
    from headwater.delivery import worker as worker_module
    from headwater.delivery.worker import DeliveryWorker
    from headwater.runtime.hub import Hub
    from headwater.state.outbox import OutboxEntry

    class TwoRequests:
        async def track(self, items, *, on_results=None, progress=None):
            first, second = list(items)[:2], list(items)[2:]
            await on_results([ItemResult(first[0].ref, True),
                              ItemResult(first[1].ref, False, "503", retriable=True)])  # fmt: skip
            await on_results([ItemResult(item.ref, True) for item in second])

        async def aclose(self) -> None:
            pass

    monkeypatch.setattr(worker_module, "SETTLE_OBJECTS", 1)  # settle after every request
    settings = make_settings(sqlite_state, {"braze": "http://127.0.0.1:9"}, run_workers=False)
    hub = Hub(settings)
    worker = DeliveryWorker(hub, settings.destinations["braze"], client=TwoRequests())
    commits = {"n": 0}
    real_commit = worker._commit

    def flaky_commit(*args):
        commits["n"] += 1
        if commits["n"] in (2, 3):  # the second row's settle, then the round's last one
            raise RuntimeError("database is locked")
        return real_commit(*args)

    worker._commit = flaky_commit

    async def main():
        for first in (0, 2):  # two commits, two rows
            await hub.outbox.enqueue([
                OutboxEntry("gateway:partner", "braze", "events", f'{{"n":{n}}}'.encode())
                for n in (first, first + 1)
            ])  # fmt: skip
        rows = hub.outbox.claim("braze", 100)
        assert len(rows) == 2
        await worker._slots.acquire()
        await worker._round(rows)

    asyncio.run(main())
    assert commits["n"] == 4
    assert hub.outbox.depth() == 1  # only the object that met the outage
    claimed: list = []
    wait_until(lambda: claimed.extend(hub.outbox.claim("braze", 100)) or claimed, timeout=3)
    (again,) = claimed
    assert again.decode() == [{"n": 1}] and again.attempts == 1
    assert hub.counters.read()["gateway:partner"] == {"delivered": 3}
    assert list_dead_letters(hub.engine) == []
    hub.outbox.close()
    hub.lock.release()
