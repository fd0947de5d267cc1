"""Currents receiver benchmark: how many events one ``headwater serve`` process accepts in
Braze's 100-event Currents batches (each committed to the state store before its 2xx), how
fast it answers, and how soon the events are landed as Parquet files.

    python -m bench.currents [--seconds 10] [--connections 8] [--state sqlite|postgresql://...]
    python -m bench.currents --rate 10000   # the paced phase at a pace a loaded machine keeps
    python -m bench.currents --quick        # a few seconds, for the smoke test

Phases: flat out (closed loop: every connection posts back to back; the throughput
figure), then paced at the target (open loop: 20,000 events/s, 200 batches/s), where the
latency target applies. After each phase: how long until every accepted event is in the
landing (read back with DuckDB, counted once per id). Targets for one process: >= 20,000
events/s, p99 accept < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import orjson
import psutil

from bench.gateway import pct, read_answer, wait_http

TOKEN = "bench-currents-token-0001"
TARGETS = {"eps": 20_000, "accept_p99_ms": 50}
EVENTS_PER_BATCH = 100


def _batch(seq: int) -> bytes:
    """100 Currents events, mostly custom events and purchases, as Braze posts them."""
    now = int(time.time())
    events = []
    for n in range(EVENTS_PER_BATCH):
        kind = "users.behaviors.Purchase" if n % 4 == 0 else "users.behaviors.CustomEvent"
        props = (
            {"product_id": f"sku-{n}", "price": 9.99, "currency": "EUR", "app_id": "app",
             "purchase_properties": {"size": "M"}}
            if n % 4 == 0
            else {"name": "opened_app", "app_id": "app", "platform": "ios",
                  "custom_properties": {"seq": seq * 100 + n}}
        )  # fmt: skip
        events.append({
            "event_type": kind, "id": str(uuid.uuid4()), "time": now,
            "user": {"user_id": f"b{seq}", "external_user_id": f"u{seq % 50_000}",
                     "timezone": "Europe/Paris"},
            "properties": props,
        })  # fmt: skip
    return orjson.dumps({"events": events})


async def _connection(port, stop_at, latencies, counters, interval=None, first_at=None):
    """One keep-alive connection; open loop when ``interval`` is set (latency counted from
    the scheduled send, so a stall is measured, not hidden)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        b"POST /currents/braze HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer "
        + TOKEN.encode() + b"\r\nBraze-Currents-Version: 1\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
    )  # fmt: skip
    due = first_at
    try:
        while time.perf_counter() < stop_at:
            if due is not None:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            counters["seq"] += 1
            body = _batch(counters["seq"])
            started = time.perf_counter() if due is None else due
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            status_line = await read_answer(reader)
            latencies.append(time.perf_counter() - started)
            if status_line.split()[1] == b"200":
                counters["events"] += EVENTS_PER_BATCH
            else:
                counters["errors"] += 1
            if due is not None:
                due += interval
    finally:
        writer.close()


async def _phase(port, seconds, connections, rate=None) -> dict:
    latencies: list[float] = []
    counters = {"events": 0, "errors": 0, "seq": int(time.time() * 1000) % 10**9}
    started = time.perf_counter()
    stop_at = started + seconds
    interval = connections * EVENTS_PER_BATCH / rate if rate else None
    await asyncio.gather(*(
        _connection(port, stop_at, latencies, counters, interval,
                    started + n * interval / connections if interval else None)
        for n in range(connections)
    ))  # fmt: skip
    return {"elapsed": time.perf_counter() - started, "latencies": latencies, **counters}


def _landed(landing: Path) -> int:
    files = list(landing.glob("currents/braze/*/*.parquet"))
    if not files:
        return 0
    with duckdb.connect() as db:
        query = "SELECT count(DISTINCT id) FROM read_parquet(?, union_by_name=true)"
        return db.execute(query, [[str(f) for f in files]]).fetchone()[0]


def _wait_landed(landing: Path, expected: int, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _landed(landing) >= expected:
            return time.monotonic() - started
        time.sleep(0.1)
    return None


def main(argv: list[str] | None = None) -> dict[str, bool]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--state", default="sqlite", help="sqlite, or a postgresql:// URL")
    parser.add_argument(
        "--rate", type=int, default=TARGETS["eps"],
        help="events/s of the paced phase (a loaded machine's p99 at a pace it can keep)",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="2 s phases, for the smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.connections = 1.0, 2

    from headwater.testing import free_port

    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="hw-bench-currents-"))
    state = "sqlite:///.headwater/state.db" if args.state == "sqlite" else args.state
    (work / "headwater.yml").write_text(
        f"state: {state}\ncurrents:\n  braze:\n    token: ${{BENCH_CURRENTS_TOKEN}}\n"
    )
    env = {**os.environ, "BENCH_CURRENTS_TOKEN": TOKEN}
    serve = subprocess.Popen(
        [sys.executable, "-m", "headwater", "serve", "--project", str(work), "--port", str(port)],
        env=env,
    )  # fmt: skip
    process = psutil.Process(serve.pid)
    landing = work / ".headwater" / "landing"
    checks: dict[str, bool] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        print(f"currents benchmark: {args.seconds:g}s per phase, {args.connections} connections, "
              f"state={args.state}, cpus={os.cpu_count()}")  # fmt: skip
        total = 0
        rate = args.rate if not args.quick else 2_000
        for label, phase_rate in (("100-event batches, flat out", None),
                                  (f"100-event batches at {rate:,} events/s", rate)):  # fmt: skip
            cpu_before = sum(process.cpu_times()[:4])
            result = asyncio.run(_phase(port, args.seconds, args.connections, phase_rate))
            total += result["events"]
            waited = _wait_landed(landing, total, timeout=120)
            cpu = sum(process.cpu_times()[:4]) - cpu_before
            eps = result["events"] / result["elapsed"]
            p99 = pct(result["latencies"], 0.99)
            landed = (
                "not all landed in 120 s" if waited is None else f"all landed {waited:.1f} s after"
            )
            print(
                f"{label:>40}: {eps:7.0f} events/s accepted | accept p50 "
                f"{pct(result['latencies'], 0.5):6.1f} ms p99 {p99:6.1f} ms | {landed} | "
                f"errors {result['errors']} | serve CPU {cpu / max(result['events'], 1) * 1e6:.0f} us/event"
            )  # fmt: skip
            if phase_rate is None:
                checks["events/s >= 20,000 flat out"] = eps >= TARGETS["eps"]
            else:
                checks[f"accept p99 < 50 ms at {rate:,} events/s"] = p99 < TARGETS["accept_p99_ms"]
            checks[f"{label}: every accepted event landed once"] = waited is not None
        landed_total = _landed(landing)
        print(f"landed {landed_total} distinct events of {total} accepted")
        for name, ok in checks.items():
            print(f"  [{'met' if ok else 'MISSED'}] {name}")
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
    return checks


if __name__ == "__main__":
    main()
