"""A paused stream's rows are committed and held out of the claim (on SQLite and
PostgreSQL); a row that escaped holding is still never claimed; resume hands them all
to the claim in id order; ``gateway`` holds every partner key's rows."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from headwater.state.db import open_state
from headwater.state.outbox import Outbox, OutboxEntry, outbox
from headwater.state.pauses import (
    HELD,
    held_rows,
    list_pauses,
    pause_stream,
    resume_stream,
)


def _entries(stream: str, start: int, count: int = 1) -> list[OutboxEntry]:
    return [
        OutboxEntry(stream, "braze", "events", f'{{"n":{n}}}'.encode())
        for n in range(start, start + count)
    ]


def _claimed(box: Outbox) -> list[int]:
    return [obj["n"] for row in box.claim("braze", 10_000) for obj in row.decode()]


def test_paused_rows_are_held_and_resume_releases_them_in_order(state_url):
    engine = open_state(state_url)
    box = Outbox(engine)
    asyncio.run(box.enqueue(_entries("shop", 0, 3)))  # before the pause: ready rows
    assert pause_stream(engine, "shop", "ada") == 1  # held by the pause itself
    box.forget_pauses()
    asyncio.run(box.enqueue(_entries("shop", 3, 2) + _entries("other", 100)))
    assert _claimed(box) == [100]  # only the stream that is not paused
    assert held_rows(engine, "shop") == 2 and list_pauses(engine)["shop"].paused_by == "ada"
    assert resume_stream(engine, "shop") == 2
    box.forget_pauses()
    assert _claimed(box) == [0, 1, 2, 3, 4]
    with engine.connect() as conn:
        times = conn.execute(select(outbox.c.available_at)).scalars().all()
    assert all(t < HELD for t in times)  # the times the rows had
    box.close()


def test_a_row_written_before_this_process_saw_the_pause_is_never_claimed(state_url):
    engine = open_state(state_url)
    box = Outbox(engine)
    asyncio.run(box.enqueue(_entries("shop", 0)))  # view read: nothing paused
    pause_stream(engine, "shop")  # by another process; this one's view is a second old
    asyncio.run(box.enqueue(_entries("shop", 1)))  # written ready under the old view
    assert held_rows(engine, "shop") == 1
    assert _claimed(box) == []  # the claim reads the pauses itself
    box.forget_pauses()
    assert _claimed(box) == [] and held_rows(engine, "shop") == 2  # held at the next read
    resume_stream(engine, "shop")  # elsewhere: this process still writes the rows held
    asyncio.run(box.enqueue(_entries("shop", 2)))
    box.forget_pauses()  # the next read releases what it held meanwhile
    assert _claimed(box) == [0, 1, 2]
    box.close()


def test_pausing_the_gateway_holds_each_partner_keys_rows_only(state_url):
    engine = open_state(state_url)
    box = Outbox(engine)
    asyncio.run(box.enqueue(_entries("gateway:extole", 0) + _entries("gateway:aiq", 1)
                            + _entries("gatewayish", 2) + _entries("gateway", 3)))  # fmt: skip
    pause_stream(engine, "gateway")
    assert _claimed(box) == [2]
    assert held_rows(engine, "gateway") == 3
    resume_stream(engine, "gateway")
    assert _claimed(box) == [0, 1, 3]
    box.close()


def test_a_paused_streams_dead_letters_replayed_meanwhile_are_held(state_url):
    from headwater.state.dead_letters import dead_letters, replay_dead_letters

    engine = open_state(state_url)
    box = Outbox(engine)
    with engine.begin() as conn:
        conn.execute(dead_letters.insert().values(
            stream="shop", destination="braze", kind="events", payload=b'{"n":7}', options=0,
            reason="400", attempts=1, parked_at=0.0,
        ))  # fmt: skip
    pause_stream(engine, "shop")
    assert replay_dead_letters(engine) == 1
    assert _claimed(box) == [] and held_rows(engine, "shop") == 1
    resume_stream(engine, "shop")
    assert _claimed(box) == [7]
    box.close()
