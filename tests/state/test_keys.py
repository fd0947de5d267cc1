"""Gateway keys: floods of unknown keys cost no reads, revocation and new keys still land
within a second (driven by an injected clock), and keys are revoked by name unless an id
is asked for explicitly."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import event

from headwater.errors import ConfigError
from headwater.state.db import open_state
from headwater.state.keys import (
    KeyRing,
    create_key,
    keys_without_destination,
    list_keys,
    revoke_key,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _count_key_reads(engine) -> list[str]:
    reads: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "gateway_keys" in statement:
            reads.append(statement)

    return reads


@pytest.fixture
def engine(state_url):
    engine = open_state(state_url)
    yield engine
    engine.dispose()


def test_a_flood_of_unknown_keys_does_not_read_the_key_table_per_request(engine):
    _record, good = create_key(engine, "extole", ["users.track"])
    clock = Clock()
    ring = KeyRing(engine, clock=clock)
    reads = _count_key_reads(engine)
    assert ring.lookup(good).name == "extole"
    for _ in range(5_000):
        assert ring.lookup("hwk_" + secrets.token_urlsafe(32)) is None
    assert len(reads) == 1  # the first load; every miss after it came from memory
    assert ring.lookup(good).name == "extole"
    # As time passes, misses read the table a few times a second at most, never per miss.
    for _step in range(40):
        clock.now += 0.05
        for _ in range(100):
            ring.lookup("hwk_" + secrets.token_urlsafe(32))
    assert len(reads) <= 1 + 2 / 0.25 + 1


def test_revocation_and_new_keys_reach_a_running_ring_within_a_second(engine):
    _record, old = create_key(engine, "old", ["users.track"])
    clock = Clock()
    ring = KeyRing(engine, clock=clock)
    assert ring.lookup(old).name == "old"

    revoke_key(engine, "old")
    clock.now += 0.5
    assert ring.lookup(old) is not None  # still cached: the ring reads at most once a second
    clock.now += 0.5
    assert ring.lookup(old) is None

    _record, new = create_key(engine, "new", ["users.track"])
    clock.now += 1.0
    assert ring.lookup(new).name == "new"


def test_revoke_takes_a_name_even_when_it_looks_like_an_id(engine):
    alpha, _ = create_key(engine, "alpha", ["users.track"])
    one, _ = create_key(engine, "1", ["users.track"])
    assert alpha.id == 1 and one.id == 2

    revoked = revoke_key(engine, "1")
    assert [k.name for k in revoked] == ["1"]
    active = {k.name for k in list_keys(engine) if k.active}
    assert active == {"alpha"}

    assert [k.name for k in revoke_key(engine, key_id=alpha.id)] == ["alpha"]
    with pytest.raises(ValueError):
        revoke_key(engine, "alpha", key_id=1)


def test_a_key_for_an_unknown_destination_is_refused_naming_the_known_ones(engine):
    with pytest.raises(ConfigError) as caught:
        create_key(engine, "x", ["users.track"], "brzae", known_destinations=["braze", "test"])
    assert "'brzae'" in str(caught.value) and "braze, test" in str(caught.value)
    assert list_keys(engine) == []
    create_key(engine, "x", ["users.track"], "test", known_destinations=["braze", "test"])

    create_key(engine, "stale", ["users.track"], "gone")
    revoke_key(engine, "x")
    (problem,) = keys_without_destination(engine, ["braze"])
    assert "'stale'" in problem and "'gone'" in problem
    revoke_key(engine, "stale")
    assert keys_without_destination(engine, ["braze"]) == []
