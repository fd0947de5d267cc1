"""/readyz's checks: cached so probes cannot flood Braze or the store, shared while one
runs, bounded by a timeout, and a state store that does not answer is named."""

from __future__ import annotations

import asyncio

from sqlalchemy import create_engine

from headwater.server.readiness import OK, Readiness, StateProbe, destination_probe
from headwater.testing import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_probes_within_the_cache_window_share_one_check():
    clock = Clock()
    calls = []

    async def check() -> None:
        calls.append(clock.now)

    readiness = Readiness({"braze": check}, ttl=5.0, clock=clock)

    async def scenario() -> None:
        assert await readiness.outcome() == {"braze": OK}
        clock.now += 4.9
        assert await readiness.outcome() == {"braze": OK}
        assert len(calls) == 1
        clock.now += 0.2
        assert await readiness.outcome() == {"braze": OK}
        assert len(calls) == 2

    asyncio.run(scenario())


def test_probes_arriving_while_a_check_runs_wait_for_it_instead_of_starting_another():
    release = None
    calls = 0

    async def check() -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    readiness = Readiness({"braze": check})

    async def scenario() -> list[dict]:
        nonlocal release
        release = asyncio.Event()
        probes = [asyncio.ensure_future(readiness.outcome()) for _ in range(50)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(*probes)

    outcomes = asyncio.run(scenario())
    assert calls == 1 and readiness.runs == 1
    assert all(o == {"braze": OK} for o in outcomes)


def test_a_check_that_never_answers_is_reported_after_the_timeout():
    async def hangs() -> None:
        await asyncio.Event().wait()

    async def fine() -> None:
        return None

    readiness = Readiness({"state": fine, "destinations.braze": hangs}, timeout=0.05)
    outcome = asyncio.run(readiness.outcome())
    assert outcome == {"state": OK, "destinations.braze": "no answer within 0.05 s"}


def test_a_failing_check_is_named_with_its_reason():
    async def refuses() -> None:
        raise ConnectionRefusedError("Connection refused\nsecond line")

    outcome = asyncio.run(Readiness({"destinations.braze": refuses}).outcome())
    assert outcome == {"destinations.braze": "ConnectionRefusedError: Connection refused"}


def test_an_unreachable_state_store_is_not_ready_and_keeps_its_password_out():
    engine = create_engine(
        f"postgresql+psycopg://hw:s3cret-pw@127.0.0.1:{free_port()}/nothing",
        connect_args={"connect_timeout": 2},
    )
    outcome = asyncio.run(Readiness({"state": StateProbe(engine)}).outcome())
    assert outcome["state"] != OK
    assert "OperationalError" in outcome["state"]
    assert "s3cret-pw" not in outcome["state"]


def test_a_destination_that_cannot_be_reached_is_not_ready():
    check = destination_probe(f"http://127.0.0.1:{free_port()}")
    outcome = asyncio.run(Readiness({"destinations.braze": check}).outcome())
    assert outcome["destinations.braze"].startswith("ConnectError")
