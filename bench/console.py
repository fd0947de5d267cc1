"""Console pages at size: 100,000 runs and 1,000,000 row errors in a SQLite state store,
every page timed over a real socket (logged in, as a browser would ask), p50 and p95.
Target: every page under 200 ms.

The row errors sit on 1,000 runs, 1,000 each; the newest run of the first sync holds
100,000 more (so its run page counts, pages and searches among the most), each with its
offending value. The gateway stream is paused with 100,000 outbox rows held (a tenth of
the row errors' count), the twenty jobs have members per split as audiences do, and a
Currents receiver keeps the most refused batches it ever keeps (10,000).

    python -m bench.console            # full size (seeding takes a minute or so)
    python -m bench.console --quick    # small, for the smoke test
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from headwater.config.currents import CurrentsReceiver
from headwater.console.queries import ensure_indexes
from headwater.runtime.hub import Hub
from headwater.runtime.settings import DestinationSettings, ServeSettings
from headwater.server.app import create_app
from headwater.state import users
from headwater.state.currents import KEEP_REJECTED
from headwater.state.db import open_state
from headwater.state.pauses import HELD
from headwater.testing import serve_in_thread

TARGET_MS = 200.0
SYNCS = 20
PASSWORD = "benchmark password"


INSERT_ERROR = (
    "INSERT INTO run_row_errors (run_id, row_key, field, reason, value) VALUES (?,?,?,?,?)"
)


def seed_outputs(cursor, held: int) -> None:
    """A paused gateway holding ``held`` outbox rows, audience sizes, refused batches."""
    now = time.time()
    cursor.execute(
        "INSERT INTO stream_pauses (stream, paused_at, paused_by) VALUES (?,?,?)",
        ("gateway", datetime.now(UTC).isoformat(" "), "bench"),
    )
    cursor.executemany(
        "INSERT INTO outbox (stream, destination, kind, payload, objects, options, "
        "enqueued_at, available_at, attempts) VALUES (?,?,?,?,?,?,?,?,?)",
        [("gateway:partner", "braze", "attributes", b'{"external_id":"u%d"}' % n, 1, 0, now,
          now + HELD, 0) for n in range(held)],
    )  # fmt: skip
    cursor.executemany(
        "INSERT INTO audience_sizes (audience, split, members, run_id, measured_at) "
        "VALUES (?,?,?,?,?)",
        [(f"sync_{n:02d}", split, 100_000 + n, None, datetime.now(UTC).isoformat(" "))
         for n in range(SYNCS) for split in ("a", "b", "holdout")],
    )  # fmt: skip
    cursor.executemany(
        "INSERT INTO currents_rejected (batch_key, receiver, status, reason, body, "
        "received_at) VALUES (?,?,?,?,?,?)",
        [(f"k{n}", "braze", 400, "event 0: no id", b"{}", now) for n in range(KEEP_REJECTED)],
    )


def seed(url: str, runs_total: int, errors_total: int) -> dict[str, int]:
    """Bulk insert through the driver: the point is the pages, not the inserts."""
    engine = open_state(url)
    ensure_indexes(engine)
    big_run_errors = errors_total // 10
    spread = errors_total - big_run_errors
    per_run = 1000 if spread >= 1000 else max(1, spread)
    error_runs = spread // per_run
    start = datetime(2026, 1, 1, tzinfo=UTC)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        rows = []
        for n in range(runs_total):
            began = start + timedelta(minutes=n)
            rows.append((
                f"sync_{n % SYNCS:02d}", "sync", "partial", began.isoformat(" "),
                (began + timedelta(seconds=30)).isoformat(" "), 30.0 + n % 50, n % 100, n % 7,
                n % 3, 1000, n % 11, 0, 100, 2, 300, 2000 + n % 300, None, "bench", 1,
                began.isoformat(" "),
            ))  # fmt: skip
        cursor.executemany(
            "INSERT INTO runs (sync, kind, status, started_at, finished_at, duration_seconds, "
            "added, changed, removed, unchanged, rejected, failed, sent, requests, data_points, "
            "data_points_saved, error, host, pid, heartbeat_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        newest = cursor.execute("SELECT max(id) FROM runs WHERE sync = 'sync_00'").fetchone()[0]
        first_id = cursor.execute("SELECT min(id) FROM runs").fetchone()[0]
        batch = []
        for i in range(error_runs):
            run_id = first_id + i * (runs_total // max(error_runs, 1))
            batch.extend(
                (run_id, f"user-{run_id}-{k}", "email", f"not an email: 'bad{k}@'", f"bad{k}@")
                for k in range(per_run)
            )
            if len(batch) >= 100_000:
                cursor.executemany(INSERT_ERROR, batch)
                batch.clear()
        batch.extend(
            (newest, f"user-{k:07d}", "email", f"not an email: 'bad{k}@'", f"bad{k}@")
            for k in range(big_run_errors)
        )
        cursor.executemany(INSERT_ERROR, batch)
        seed_outputs(cursor, errors_total // 10)
        now = time.time()
        cursor.executemany(
            "INSERT INTO dead_letters (stream, destination, kind, payload, options, reason, "
            "attempts, parked_at) VALUES (?,?,?,?,?,?,?,?)",
            [
                (
                    "gateway:partner",
                    "braze",
                    "attributes",
                    b'{"external_id":"u%d"}' % n,
                    0,
                    "400: bad attribute",
                    3,
                    now,
                )
                for n in range(10_000)
            ],  # fmt: skip
        )
        far = cursor.execute(
            "SELECT id FROM run_row_errors WHERE run_id = ? ORDER BY id LIMIT 1 OFFSET ?",
            (newest, big_run_errors * 9 // 10),
        ).fetchone()[0]
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    users.create_user(engine, "bench", PASSWORD)
    engine.dispose()
    return {"big_run": int(newest), "some_run": int(first_id), "far_error": int(far)}


def pages(ids: dict[str, int]) -> dict[str, str]:
    big = ids["big_run"]
    return {
        "overview": "/console/",
        "sync (page 1)": "/console/syncs/sync_00",
        "sync (page 90)": "/console/syncs/sync_00?page=90",
        "run, 100k errors": f"/console/runs/{big}",
        "run, 100k errors, far page": f"/console/runs/{big}?after={ids['far_error']}",
        "run, search": f"/console/runs/{big}?q=user-00999",
        "run, value search": f"/console/runs/{big}?q=bad9999&in=value",
        "run, errors CSV, search": f"/console/runs/{big}/errors.csv?q=user-00999",
        "run, 1k errors": f"/console/runs/{ids['some_run']}",
        "dead letters": "/console/dead-letters",
        "keys": "/console/keys",
        "stream (paused, rows held)": "/console/streams/gateway",
        "audiences": "/console/audiences",
        "audience": "/console/audiences/sync_00",
        "audience, page 90": "/console/audiences/sync_00?page=90",
        "exports": "/console/exports",
        "stream events": "/console/streams/gateway/events",
    }


def measure(url: str, ids: dict[str, int], repeats: int) -> dict[str, tuple[float, float]]:
    client = httpx.Client(base_url=url, headers={"Accept": "text/html"}, timeout=60)
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    client.post("/console/login", data={"csrf": csrf, "name": "bench", "password": PASSWORD})
    out = {}
    for name, path in pages(ids).items():
        client.get(path).raise_for_status()  # warm
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            answer = client.get(path)
            times.append((time.perf_counter() - began) * 1000)
            answer.raise_for_status()
        times.sort()
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        out[name] = (statistics.median(times), p95)
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 runs, 20,000 row errors")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--errors", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.quick:
        args.runs, args.errors, args.repeats = 2_000, 20_000, 3
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'state.db'}"
        began = time.perf_counter()
        ids = seed(url, args.runs, args.errors)
        print(f"seeded {args.runs:,} runs and {args.errors:,} row errors "
              f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
        settings = ServeSettings(
            state_url=url,
            destinations={
                "braze": DestinationSettings(name="braze", url="http://127.0.0.1:9", api_key="k")
            },  # fmt: skip
            run_workers=False,
            currents={"braze": CurrentsReceiver(token=SecretStr("bench-currents-token-0123"))},
        )
        hub = Hub(settings)
        with serve_in_thread(create_app(settings, hub)) as server:
            figures = measure(server.url, ids, args.repeats)
    worst = 0.0
    print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8}")
    for name, (p50, p95) in figures.items():
        worst = max(worst, p95)
        print(f"{name:32} {p50:8.1f} {p95:8.1f}")
    verdict = "met" if worst < TARGET_MS else "NOT met"
    print(
        f"target: every page under {TARGET_MS:.0f} ms (p95): {verdict} (worst p95 {worst:.1f} ms)"
    )
    print("command: python -m bench.console" + (" --quick" if args.quick else ""))


if __name__ == "__main__":
    main()
