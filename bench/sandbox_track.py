"""Sandbox ingestion benchmark: how many /users/track attribute objects one
``headwater sandbox`` process persists per second.

    python -m bench.sandbox_track [--seconds 10] [--concurrency 16] [--users 20000]

The sandbox runs as its own process (``python -m headwater sandbox --db <tmp> --key K
--port P``); a concurrent httpx client in a second process posts full batches (75
attribute objects, 10 custom attributes of mixed types each) for a fixed time. At the end
the figures are checked against the sandbox's own counters (``/_sandbox/counters``), so
only objects that were committed to its database count. Target: >= 25,000 attribute
objects/s persisted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import psutil

BENCH_KEY = "bench-sandbox-key-0001"
OBJECTS_PER_REQUEST = 75
ATTRIBUTES_PER_OBJECT = 10
TARGET_OBJECTS_PER_SECOND = 25_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _attributes_object(user: int, round_: int) -> dict:
    """One attributes object: 10 custom attributes of mixed types."""
    return {
        "external_id": f"bench-user-{user}",
        "plan": ("free", "pro", "team")[user % 3],
        "visits": round_ * 7 + user,
        "score": (user % 1000) / 7.0,
        "is_active": user % 2 == 0,
        "last_seen_at": f"2024-05-{1 + user % 28:02d}T10:00:00Z",
        "favourite_colour": ("red", "green", "blue")[round_ % 3],
        "orders": {"inc": 1},
        "tags": ["a", "b", f"c{user % 5}"],
        "city": f"city-{user % 97}",
        "lifetime_value": round_ + user * 0.01,
    }


def _bodies(users: int) -> list[bytes]:
    """Request bodies covering every user once (the first pass creates, later ones update)."""
    bodies = []
    for i in range(-(-users // OBJECTS_PER_REQUEST)):
        start = i * OBJECTS_PER_REQUEST
        objects = [_attributes_object((start + j) % users, i) for j in range(OBJECTS_PER_REQUEST)]
        bodies.append(orjson.dumps({"attributes": objects}))
    return bodies


# ------------------------------------------------------------------------------ driver


async def _drive(url: str, seconds: float, concurrency: int, users: int) -> dict:
    bodies = _bodies(users)
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "Content-Type": "application/json"}
    stats = {"ok": 0, "failed": 0, "statuses": {}}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def worker(n: int) -> None:
            i = n
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                i += concurrency
                response = await client.post("/users/track", content=body, headers=headers)
                if response.status_code == 201:
                    stats["ok"] += 1
                else:
                    stats["failed"] += 1
                    key = str(response.status_code)
                    stats["statuses"][key] = stats["statuses"].get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        stats["elapsed"] = time.perf_counter() - started
    return stats


def _driver_main(url: str, seconds: float, concurrency: int, users: int, out) -> None:
    out.send(asyncio.run(_drive(url, seconds, concurrency, users)))


# ------------------------------------------------------------------------------- main


def _start_sandbox(db: Path, port: int) -> tuple[subprocess.Popen, list[str]]:
    command = [
        sys.executable, "-m", "headwater", "sandbox",
        "--db", str(db), "--key", BENCH_KEY, "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"sandbox exited: {process.stderr.read().decode()}")
        try:
            httpx.get(f"{url}/_sandbox/counters", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        raise SystemExit("sandbox did not start within 30 s")
    shown = [c if c != BENCH_KEY else "<key>" for c in command]
    return process, shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--users", type=int, default=20_000, help="distinct external_ids")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hw-bench-sandbox-") as tmp:
        db = Path(tmp) / "sandbox.db"
        port = _free_port()
        process, command = _start_sandbox(db, port)
        url = f"http://127.0.0.1:{port}"
        try:
            receive, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
            driver = multiprocessing.get_context("spawn").Process(
                target=_driver_main, args=(url, args.seconds, args.concurrency, args.users, send)
            )
            sandbox_cpu = psutil.Process(process.pid)
            cpu_before = sum(sandbox_cpu.cpu_times()[:2])
            driver.start()
            stats = receive.recv()
            cpu_seconds = sum(sandbox_cpu.cpu_times()[:2]) - cpu_before
            driver.join()
            counters = httpx.get(f"{url}/_sandbox/counters", timeout=60).json()
        finally:
            process.terminate()
            process.wait(timeout=30)
        size_mb = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6

    persisted_requests = counters["requests"].get("users.track", 0)
    persisted_objects = persisted_requests * OBJECTS_PER_REQUEST
    elapsed = stats["elapsed"]
    objects_per_second = persisted_objects / elapsed
    print("command:", " ".join(command))
    print(
        f"driver: httpx.AsyncClient, {args.concurrency} concurrent, {args.seconds:g} s, "
        f"{OBJECTS_PER_REQUEST} objects x {ATTRIBUTES_PER_OBJECT} custom attributes per request, "
        f"{args.users:,} distinct users, pid {os.getpid()} (sandbox pid {process.pid})"
    )
    print(f"answered 201: {stats['ok']:,} requests; other: {stats['failed']} {stats['statuses']}")
    print(
        f"persisted (sandbox counters): {persisted_requests:,} requests, "
        f"{persisted_objects:,} attribute objects, {counters['users']:,} users, "
        f"{counters['data_points']:,} data points; database {size_mb:.1f} MB"
    )
    print(f"requests/s: {persisted_requests / elapsed:,.0f}")
    print(
        f"attribute objects/s persisted: {objects_per_second:,.0f} "
        f"(target >= {TARGET_OBJECTS_PER_SECOND:,})"
    )
    print(
        f"sandbox CPU: {cpu_seconds:.1f} s over {elapsed:.1f} s wall "
        f"({cpu_seconds / elapsed:.0%} of one core; the machine's other load shares it); "
        f"attribute objects per sandbox CPU-second: {persisted_objects / cpu_seconds:,.0f}"
    )
    if persisted_requests != stats["ok"]:
        print("MISMATCH: 201 answers and persisted requests differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
