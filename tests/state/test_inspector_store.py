"""The inspector in the state store: shared by processes (two inspectors on one store see
each other's entries), kept across restarts, bounded per stream and in bytes, each stream
reading only its own entries, and no secret written to the table."""

from __future__ import annotations

from sqlalchemy import func, select

from headwater.runtime.inspector import Inspector
from headwater.state.db import open_state
from headwater.state.inspector import inspector_events


def test_entries_are_shared_bounded_redacted_and_per_stream(state_url):
    engine = open_state(state_url)
    first = Inspector(engine=engine, max_bytes=64 * 1024)
    second = Inspector(engine=engine, max_bytes=64 * 1024)
    first.configure("shop", 3)
    second.configure("shop", 3)
    for n in range(5):
        first.record("shop", "in", {"n": n, "password": "hunter2"})
    second.record("crm", "in", {"n": "crm-only"})
    first.flush()
    second.flush()
    shop = second.recent("shop")
    assert [e["payload"]["n"] for e in shop] == [4, 3, 2]  # newest first, 3 kept
    assert all(e["payload"]["password"] == "[redacted]" for e in shop)
    assert [e["payload"]["n"] for e in first.recent("crm")] == ["crm-only"]
    with engine.connect() as conn:
        stored = b"".join(row.payload for row in conn.execute(select(inspector_events)))
    assert b"hunter2" not in stored  # redacted before it was written
    restarted = Inspector(engine=engine)
    assert len(restarted.recent("shop")) == 3
    for n in range(200):  # 200 x ~1 KB against a 64 KB bound
        first.record(f"s{n % 7}", "in", {"text": "y" * 1000})
    first.flush()
    with engine.connect() as conn:
        total = conn.execute(select(func.sum(inspector_events.c.size))).scalar_one()
    assert total <= 64 * 1024
    first.stop()
    second.stop()
    engine.dispose()


def test_the_flush_thread_writes_without_being_asked(state_url):
    engine = open_state(state_url)
    writer = Inspector(engine=engine).start()
    reader = Inspector(engine=engine)
    writer.record("shop", "in", {"n": 1})
    from gateway_harness import wait_until

    wait_until(lambda: len(reader.recent("shop")) == 1)
    writer.stop()
    engine.dispose()


def test_a_busy_stream_costs_a_flush_only_the_entries_it_keeps(state_url, monkeypatch):
    """Under heavy traffic a flush round holds thousands of entries per stream; redacting
    and writing all of them only to trim them at once cost the gateway half its
    throughput. Only each stream's newest ``size`` are redacted and written."""
    engine = open_state(state_url)
    written_by: list[str] = []  # serve passes its outbox's writer thread (one SQLite writer)

    def writer(write):
        written_by.append("writer")
        write()

    inspector = Inspector(engine=engine, writer=writer)
    inspector.configure("shop", 4)
    redacted: list[bytes] = []
    real = inspector._redacted
    monkeypatch.setattr(inspector, "_redacted", lambda p: redacted.append(p) or real(p))
    for n in range(1_000):
        inspector.record("shop", "in", raw=b'{"n": %d, "token": "t"}' % n)
    inspector.record("crm", "in", raw=b'{"n": "crm"}')
    assert inspector.flush() is True  # busy: the next flush waits longer
    assert len(redacted) == 5  # shop's newest 4 and crm's one
    assert written_by == ["writer"]
    assert [e["payload"]["n"] for e in inspector.recent("shop")] == [999, 998, 997, 996]
    assert inspector.recent("shop")[0]["payload"]["token"] == "[redacted]"
    inspector.record("shop", "in", raw=b'{"n": 1000}')
    assert inspector.flush() is False  # everything recorded was written
    inspector.stop()
    engine.dispose()
