"""Dead letters keep the object and the reason, and replay puts them back in the outbox."""

from __future__ import annotations

import asyncio

from headwater.state.db import open_state
from headwater.state.dead_letters import list_dead_letters, park_objects, replay_dead_letters
from headwater.state.outbox import Outbox, OutboxEntry


def test_parked_rows_are_listed_with_reason_and_replayed_once(tmp_path):
    engine = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    box = Outbox(engine)
    asyncio.run(box.enqueue([OutboxEntry("extole", "braze", "events", b'{"name":"x"}')] * 2))
    (row,) = box.claim("braze", 10)  # both objects share one row
    first, second = row.lines()
    with engine.begin() as conn:
        box.ack([row.id], conn)
        park_objects(conn, [(row, first, "bad value"), (row, second, "failed 8 times")])
    letters = list_dead_letters(engine)
    assert [(d.stream, d.reason, d.payload) for d in letters] == [
        ("extole", "bad value", b'{"name":"x"}'),
        ("extole", "failed 8 times", b'{"name":"x"}'),
    ]
    assert box.depth() == 0
    assert replay_dead_letters(engine, [letters[0].id]) == 1
    assert replay_dead_letters(engine, [letters[0].id]) == 0  # already replayed
    assert box.depth() == 1
    assert replay_dead_letters(engine) == 1  # all the rest
    assert box.depth() == 2
    assert list_dead_letters(engine) == []
    assert len(list_dead_letters(engine, include_replayed=True)) == 2
    box.close()
