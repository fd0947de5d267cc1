"""The sandbox's key ring shares the gateway's cache: a flood of unknown keys costs no
reads, keys made or revoked by another process land within a second (injected clock),
and keys are revoked by their name, even a name that looks like a number."""

from __future__ import annotations

import secrets

from headwater.sandbox.keys import KeyRing
from headwater.sandbox.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingStore(Store):
    reads = 0

    def api_keys(self):
        self.reads += 1
        return super().api_keys()


def test_a_flood_of_unknown_keys_does_not_read_the_stored_keys_per_request(tmp_path):
    store = CountingStore(str(tmp_path / "s.db"))
    clock = Clock()
    ring = KeyRing(store, clock=clock)
    good = ring.create("partner", ["users.track"])
    assert ring.lookup(good).name == "partner"
    reads = store.reads
    for _ in range(5_000):
        assert ring.lookup(secrets.token_hex(18)) is None
    assert store.reads == reads
    for _step in range(40):
        clock.now += 0.05
        for _ in range(100):
            ring.lookup(secrets.token_hex(18))
    assert store.reads - reads <= 2 / 0.25 + 1


def test_keys_from_another_process_land_within_a_second(tmp_path):
    db = str(tmp_path / "s.db")
    clock = Clock()
    running = KeyRing(Store(db), clock=clock)
    other = KeyRing(Store(db))  # the `sandbox keys` command, say
    secret = other.create("partner", ["users.track"])
    clock.now += 1.0
    assert running.lookup(secret).name == "partner"
    assert other.revoke("partner")
    clock.now += 0.5
    assert running.lookup(secret) is not None
    clock.now += 0.5
    assert running.lookup(secret) is None


def test_revoke_is_by_name_even_when_the_name_is_a_number(tmp_path):
    ring = KeyRing(Store(str(tmp_path / "s.db")))
    first = ring.create("alpha", ["users.track"])
    second = ring.create("1", ["users.track"])
    assert ring.revoke("1")
    assert ring.lookup(second) is None
    assert ring.lookup(first).name == "alpha"
