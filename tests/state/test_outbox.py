"""The outbox commits before answering, groups concurrent commits, packs objects into rows
of at most 75, hands each row to one worker at a time (on SQLite and PostgreSQL), gives
rows back trimmed to what is left, and drops re-posted events within the window."""

from __future__ import annotations

import asyncio
import threading

from headwater.state.db import open_state
from headwater.state.outbox import Outbox, OutboxEntry, Retry


def _entry(i: int, key: str | None = None) -> OutboxEntry:
    key = key.encode() if key else None
    return OutboxEntry("s", "braze", "events", f'{{"n":{i}}}'.encode(), dedupe_key=key)


def test_concurrent_requests_share_group_commits_and_each_is_committed_when_answered(state_url):
    outbox = Outbox(open_state(state_url))

    async def main():
        async def one(i):
            await outbox.enqueue([_entry(i)])
            return outbox.depth()  # a fresh connection sees the row once enqueue returns

        return await asyncio.gather(*(one(i) for i in range(200)))

    seen = asyncio.run(main())
    assert min(seen) >= 1 and outbox.depth() == 200
    assert outbox.commits < 200  # grouped
    rows = outbox.claim("braze", 1000)
    assert len(rows) < 200  # a group commit packs its requests' objects into shared rows
    objects = [obj["n"] for row in rows for obj in row.decode()]
    assert sorted(objects) == list(range(200))
    assert all(1 <= row.objects == len(row.decode()) <= 75 for row in rows)
    outbox.close()


def test_rows_hold_one_kind_for_one_stream_and_destination(state_url):
    box = Outbox(open_state(state_url))
    entries = [
        OutboxEntry("a", "braze", "events", b'{"n":1}'),
        OutboxEntry("a", "braze", "attributes", b'{"n":2}'),
        OutboxEntry("b", "braze", "events", b'{"n":3}'),
        OutboxEntry("a", "test", "events", b'{"n":4}'),
        OutboxEntry("a", "braze", "events", b'{"n":5}'),
    ]
    asyncio.run(box.enqueue(entries))
    rows = box.claim("braze", 100)
    shapes = sorted((r.stream, r.kind, [o["n"] for o in r.decode()]) for r in rows)
    assert shapes == [("a", "attributes", [2]), ("a", "events", [1, 5]), ("b", "events", [3])]
    assert [o["n"] for r in box.claim("test", 100) for o in r.decode()] == [4]
    box.close()


def test_a_claim_takes_whole_rows_up_to_the_object_limit(state_url):
    box = Outbox(open_state(state_url))
    asyncio.run(box.enqueue([_entry(i) for i in range(75 * 3 + 10)]))  # rows: 75, 75, 75, 10
    first = box.claim("braze", 160)
    assert [r.objects for r in first] == [75, 75]  # a third row would pass 160
    second = box.claim("braze", 5)
    assert [r.objects for r in second] == [75]  # at least one row, whatever its size
    third = box.claim("braze", 1000)
    assert [r.objects for r in third] == [10]
    box.close()


def test_a_row_is_claimed_by_one_worker_until_its_lease_expires(state_url, clock):
    engine = open_state(state_url)
    writer = Outbox(engine, clock=clock)
    asyncio.run(writer.enqueue([_entry(i) for i in range(300)]))
    # Leases on a clock the test steps: a slow drain cannot outlive them by accident.
    first = Outbox(engine, lease_seconds=30, clock=clock)
    second = Outbox(engine, lease_seconds=30, clock=clock)
    claimed: list[list[int]] = [[], []]

    def drain(box, out):
        while rows := box.claim("braze", 25):
            out.extend(o["n"] for r in rows for o in r.decode())

    threads = [
        threading.Thread(target=drain, args=(b, c))
        for b, c in zip((first, second), claimed, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not set(claimed[0]) & set(claimed[1])
    assert len(claimed[0]) + len(claimed[1]) == 300
    assert first.claim("braze", 10) == []  # all leased
    clock.advance(29)
    assert second.claim("braze", 10) == []  # still leased
    clock.advance(1.01)
    again = first.claim("braze", 1000)
    assert sum(r.objects for r in again) == 300  # leases expired: a crashed worker's rows come back
    first.ack([r.id for r in again])
    assert first.depth() == 0
    for box in (writer, first, second):
        box.close()


def test_released_rows_wait_for_their_backoff_and_count_attempts(state_url, clock):
    box = Outbox(open_state(state_url), clock=clock)
    asyncio.run(box.enqueue([_entry(1)]))
    (row,) = box.claim("braze", 10)
    box.release({row.id: Retry("503 injected", 30)})
    clock.advance(29.9)
    assert box.claim("braze", 10) == []
    clock.advance(0.2)
    (again,) = box.claim("braze", 10)
    assert again.attempts == 1
    box.close()


def test_a_row_given_back_keeps_only_the_objects_left_to_send(state_url):
    box = Outbox(open_state(state_url))
    asyncio.run(box.enqueue([_entry(i) for i in range(5)]))
    (row,) = box.claim("braze", 10)
    left = [line for line in row.lines() if b'"n":1}' in line or b'"n":3}' in line]
    box.release({row.id: Retry("429 storm", 0, remaining=left)})
    (again,) = box.claim("braze", 10)
    assert again.decode() == [{"n": 1}, {"n": 3}] and again.objects == 2
    assert again.attempts == 1 and box.depth() == 2
    box.close()


def test_repeated_dedupe_keys_are_enqueued_once_within_the_window(state_url, clock):
    box = Outbox(open_state(state_url), seen_window_seconds=60, clock=clock)

    async def main():
        a = await box.enqueue([_entry(1, "k1"), _entry(2, "k1"), _entry(3, "k2")])
        clock.advance(59.9)
        b = await box.enqueue([_entry(4, "k1")])
        clock.advance(60.1)
        c = await box.enqueue([_entry(5, "k1")])
        return a, b, c

    assert asyncio.run(main()) == (1, 1, 0)
    assert box.depth() == 3
    box.close()


def test_the_oldest_ready_row_is_claimed_first_and_a_retried_row_waits_its_turn(state_url, clock):
    """Claims follow readiness (the claim index's order), so a claim reads only the rows
    it leases however long the backlog; a row given back with a backoff queues again."""
    box = Outbox(open_state(state_url), clock=clock)
    asyncio.run(box.enqueue([OutboxEntry("a", "braze", "events", b'{"n":0}')]))
    (first,) = box.claim("braze", 1)
    box.release({first.id: Retry("503 injected", 5)})  # ready again at 5
    for n in (1, 2):  # ready at 2 and at 4
        clock.advance(2)
        asyncio.run(box.enqueue([OutboxEntry(f"s{n}", "braze", "events", b'{"n":%d}' % n)]))
    clock.advance(2)
    order = [box.claim("braze", 1)[0].decode()[0]["n"] for _ in range(3)]
    assert order == [1, 2, 0]
    box.close()


def test_a_claim_does_not_read_the_whole_backlog(tmp_path):
    """SQLite: the work of a claim (virtual-machine steps, not time) stays flat as the
    backlog grows a hundredfold; sorting every ready row by id made it grow with it."""
    from sqlalchemy import event

    def claim_steps(backlog: int) -> int:
        box = Outbox(open_state(f"sqlite:///{tmp_path / f'{backlog}.db'}"))

        async def fill():
            await asyncio.gather(
                *(
                    box.enqueue([OutboxEntry(f"s{i}", "braze", "events", b"{}")])
                    for i in range(backlog)
                )
            )

        asyncio.run(fill())
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        def watch(conn, cursor, statement, *_):
            if "lease_owner" in statement:
                conn.connection.driver_connection.set_progress_handler(count, 100)

        event.listen(box.engine, "before_cursor_execute", watch)
        assert len(box.claim("braze", 10)) == 10
        box.close()
        return steps[0]

    small, large = claim_steps(100), claim_steps(10_000)
    assert large < small * 5, (small, large)


def test_a_write_handed_to_a_closed_outbox_runs_on_the_callers_thread(state_url):
    """The inspector's last flush and the checkpointer may come after the outbox closed
    (a daemon thread at exit): the write still happens."""
    box = Outbox(open_state(state_url))
    box.close()
    ran: list[str] = []
    assert box.run_with_writers(lambda: ran.append(threading.current_thread().name) or 7) == 7
    assert ran == [threading.current_thread().name]
