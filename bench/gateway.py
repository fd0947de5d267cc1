"""Gateway benchmark: how many requests and events one ``headwater serve`` process accepts
(each committed to the outbox before its 2xx), how fast it answers, and how long events
take to reach Braze (a local receiver standing in for it).

    python -m bench.gateway [--seconds 10] [--state sqlite|postgresql://...]

Phases: single-event posts and full 75-event posts, first flat out (closed loop: as many
as the gateway accepts, which is the throughput figure), then paced at the target rates
(open loop: 2,000 single-event posts/s, 20,000 events/s in full posts), which is where
the latency targets apply: flat out, latency is only the load generator's queue. Printed
per phase: requests/s and events/s accepted, accept latency p50/p99, end-to-end p50/p99
(post -> receiver), and the gateway's CPU per event (intake and delivery, all threads).
Targets for one process: >= 2,000 single-event req/s, >= 20,000 events/s in full posts,
p99 accept < 50 ms and end-to-end p99 < 2 s at those rates. Then Connected Content
lookups at 1,000 req/s (target p99 < 10 ms).

The load generator is a minimal keep-alive HTTP/1.1 client on raw asyncio sockets, so the
client costs as little CPU as possible; the receiver runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import httpx
import orjson
import psutil

RECEIVER_KEY = "bench-receiver-key-0001"
TARGETS = {"single_rps": 2000, "full_eps": 20000, "accept_p99_ms": 50, "e2e_p99_ms": 2000}


class Phase(NamedTuple):
    name: str
    label: str
    per_request: int  # events per post
    rate: float | None = None  # events/s offered (open loop); None: as fast as accepted


PHASES = (
    Phase("single", "single-event posts, flat out", 1),
    Phase("full", "75-event posts, flat out", 75),
    Phase("single@target", "single-event posts at 2,000/s", 1, TARGETS["single_rps"]),
    Phase("full@target", "75-event posts at 20,000 events/s", 75, TARGETS["full_eps"]),
)


# ---------------------------------------------------------------------------- receiver


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 answer off a kept-alive connection; return its status line (the
    body, sized by Content-Length, is read and dropped)."""
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status_line


def _receiver_main(port: int) -> None:
    """A Braze stand-in: answers /users/track 201 and records each event's end-to-end time."""
    import uvicorn

    latencies: list[float] = []
    state = {"events": 0, "requests": 0}

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["path"] == "/stats":
            data = {
                "events": state["events"],
                "requests": state["requests"],
                "latencies": latencies,
            }
            if scope["method"] == "DELETE":
                latencies.clear()
                state.update(events=0, requests=0)
            answer, status = orjson.dumps(data), 200
        else:
            now = time.time()
            parsed = orjson.loads(body)
            state["requests"] += 1
            counts = {}
            for kind in ("attributes", "events", "purchases"):
                if kind in parsed:
                    counts[f"{kind}_processed"] = len(parsed[kind])
            for event in parsed.get("events", []):
                state["events"] += 1
                sent = event.get("properties", {}).get("sent_at")
                if sent:
                    latencies.append(now - sent)
            answer, status = orjson.dumps({"message": "success", **counts}), 201
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools")  # fmt: skip


# ---------------------------------------------------------------------------- load


async def _one_connection(
    port, key, make_body, stop_at, latencies, counters, interval=None, first_at=None
) -> None:
    """Post on one keep-alive connection: back to back (closed loop), or one request
    every ``interval`` seconds (open loop), where a late answer delays the next send and
    latency counts from the scheduled time, so a stall is measured, not hidden."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        b"POST /users/track HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer " + key.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
    )  # fmt: skip
    due = first_at
    try:
        while time.perf_counter() < stop_at:
            if due is not None:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            body, events = make_body()
            started = time.perf_counter() if due is None else due
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            status_line = await read_answer(reader)
            latencies.append(time.perf_counter() - started)
            if status_line.split()[1] == b"201":
                counters["requests"] += 1
                counters["events"] += events
            else:
                counters["errors"] += 1
            if due is not None:
                due += interval
    finally:
        writer.close()


def _body_maker(events_per_request: int):
    seq = 0

    def make() -> tuple[bytes, int]:
        nonlocal seq
        now = time.time()
        events = []
        for _ in range(events_per_request):
            seq += 1
            events.append({"external_id": f"user-{seq % 50_000}", "name": "bench_event",
                           "time": "2024-05-02T10:00:00Z",
                           "properties": {"seq": seq, "sent_at": now}})  # fmt: skip
        return orjson.dumps({"events": events}), events_per_request

    return make


async def _phase(port, key, events_per_request, seconds, connections, rate=None) -> dict:
    """Closed loop (``rate`` None: every connection posts back to back, the most the
    gateway accepts) or open loop at ``rate`` requests/s spread over the connections."""
    latencies: list[float] = []
    counters = {"requests": 0, "events": 0, "errors": 0}
    make = _body_maker(events_per_request)
    started = time.perf_counter()
    stop_at = started + seconds
    interval = connections / rate if rate else None
    await asyncio.gather(*(
        _one_connection(port, key, make, stop_at, latencies, counters, interval,
                        started + n * interval / connections if interval else None)
        for n in range(connections)
    ))  # fmt: skip
    elapsed = time.perf_counter() - started
    return {"elapsed": elapsed, "latencies": latencies, **counters}


CONTENT_USERS = 2000


async def _content_phase(port: int, rate: float, seconds: float) -> dict:
    """Seed share links through the Extole webhook, then GET /content at a fixed rate
    (open loop: requests are sent on schedule whether or not earlier ones finished)."""
    hook = {"Authorization": "Bearer bench-hook-token"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        for start in range(0, CONTENT_USERS, 100):
            batch = [
                {"event_id": f"seed-{i}", "event_name": "created_share_link",
                 "person": {"partner_user_id": f"cust-{i}", "email": f"c{i}@example.com"},
                 "data": {"share_link": f"https://refer.example/{i}", "share_code": f"C{i}"}}
                for i in range(start, start + 100)
            ]  # fmt: skip
            answer = await http.post("/hooks/extole", json=batch, headers=hook)
            answer.raise_for_status()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    connections = 32
    per_connection = rate / connections
    stop_at = time.perf_counter() + seconds

    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        next_at = time.perf_counter() + index / rate
        while next_at < stop_at:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            user = (index * 7919 + n) % CONTENT_USERS
            started = time.perf_counter()
            writer.write(
                f"GET /content/extole/cust-{user} HTTP/1.1\r\nHost: bench\r\n"
                f"Authorization: Bearer bench-content-token\r\n\r\n".encode()
            )
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            n += 1
            next_at += 1 / per_connection
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(connections)))
    return {"rate": rate, "done": len(latencies), "elapsed": time.perf_counter() - started,
            "latencies": latencies, "statuses": statuses}  # fmt: skip


def machine_speed() -> float:
    """Milliseconds for a fixed pure-Python loop: printed before and after the phases, so
    a run on a machine that slowed down (shared hosts do) shows it."""
    started = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    return (time.perf_counter() - started) * 1000


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile of latencies in seconds, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _wait_drained(receiver_port: int, expected: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    stats = {}
    while time.monotonic() < deadline:
        stats = httpx.get(f"http://127.0.0.1:{receiver_port}/stats", timeout=30).json()
        if stats["events"] >= expected:
            break
        time.sleep(0.2)
    httpx.delete(f"http://127.0.0.1:{receiver_port}/stats", timeout=30)
    return stats


def wait_http(url: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers at all (a server process starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--single-connections", type=int, default=32)
    parser.add_argument("--full-connections", type=int, default=8)
    parser.add_argument("--state", default="sqlite", help="sqlite, or a postgresql:// URL")
    parser.add_argument(
        "--content-rate", type=float, default=1000.0, help="Connected Content req/s"
    )
    parser.add_argument(
        "--phases",
        default=",".join([*(p.name for p in PHASES), "content"]),
        help="which phases to run, comma-separated",
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="run the gateway under cProfile, stats to FILE"
    )
    args = parser.parse_args()
    phases = set(args.phases.split(","))

    from headwater.testing import free_port

    receiver_port, gateway_port = free_port(), free_port()
    receiver = multiprocessing.get_context("spawn").Process(
        target=_receiver_main, args=(receiver_port,), daemon=True
    )
    receiver.start()
    wait_http(f"http://127.0.0.1:{receiver_port}/stats")

    work = Path(tempfile.mkdtemp(prefix="hw-bench-"))
    state = "sqlite:///.headwater/state.db" if args.state == "sqlite" else args.state
    (work / "headwater.yml").write_text(
        f"state: {state}\ndestinations:\n  braze:\n    url: http://127.0.0.1:{receiver_port}\n"
        f"    api_key: ${{BENCH_BRAZE_KEY}}\n    max_concurrency: 4\n"
        "streams:\n  extole:\n    preset: extole\n"
        "    auth: {type: bearer, token: bench-hook-token}\n"
        "    content: {attributes: [share_link, share_code], token: bench-content-token}\n"
    )
    env = {**os.environ, "BENCH_BRAZE_KEY": RECEIVER_KEY}
    created = subprocess.run(
        [sys.executable, "-m", "headwater", "keys", "create", "--name", "bench", "--perm",
         "users.track", "--project", str(work)],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    key = created.stdout.strip().splitlines()[-1]
    gateway = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", args.profile] if args.profile else []),
         "-m", "headwater", "serve", "--project", str(work), "--port", str(gateway_port)],
        env=env,
    )  # fmt: skip
    serve = psutil.Process(gateway.pid)
    try:
        wait_http(f"http://127.0.0.1:{gateway_port}/healthz")
        print(f"gateway benchmark: {args.seconds:.0f}s per phase, state={args.state}, "
              f"cpus={os.cpu_count()}, machine speed {machine_speed():.0f} ms")  # fmt: skip
        results: dict[str, dict] = {}
        for phase in PHASES:
            if phase.name not in phases:
                continue
            connections = (
                args.single_connections if phase.per_request == 1 else args.full_connections
            )
            if phase.rate:
                connections = max(connections, 16)
            rate = phase.rate / phase.per_request if phase.rate else None
            cpu_before = sum(serve.cpu_times()[:4])
            result = asyncio.run(
                _phase(gateway_port, key, phase.per_request, args.seconds, connections, rate)
            )
            stats = _wait_drained(receiver_port, result["events"])
            cpu = sum(serve.cpu_times()[:4]) - cpu_before  # intake and delivery, all threads
            result["e2e"] = stats.get("latencies", [])
            results[phase.name] = result
            print(
                f"{phase.label:>34}: {result['requests'] / result['elapsed']:6.0f} req/s "
                f"{result['events'] / result['elapsed']:7.0f} events/s | accept p50 "
                f"{pct(result['latencies'], 0.5):6.1f} ms p99 "
                f"{pct(result['latencies'], 0.99):6.1f} ms | end-to-end p50 "
                f"{pct(result['e2e'], 0.5):7.1f} ms p99 {pct(result['e2e'], 0.99):7.1f} ms"
                f" | delivered {stats.get('events', 0)}/{result['events']} in "
                f"{stats.get('requests', 0)} Braze requests, errors {result['errors']}"
                f" | gateway CPU {cpu / max(result['events'], 1) * 1e6:.0f} us/event"
            )
        checks: dict[str, bool] = {}
        if "single" in results:
            single = results["single"]
            checks["single-event req/s >= 2,000"] = (
                single["requests"] / single["elapsed"] >= TARGETS["single_rps"]
            )
        if "full" in results:
            full = results["full"]
            checks["events/s in full posts >= 20,000"] = (
                full["events"] / full["elapsed"] >= TARGETS["full_eps"]
            )
        paced = [r for name, r in results.items() if "@" in name]
        if paced:
            worst_accept = max(pct(r["latencies"], 0.99) for r in paced)
            worst_e2e = max(pct(r["e2e"], 0.99) for r in paced)
            checks["accept p99 < 50 ms at the target rates"] = (
                worst_accept < TARGETS["accept_p99_ms"]
            )
            checks["end-to-end p99 < 2 s at the target rates"] = worst_e2e < TARGETS["e2e_p99_ms"]
        if "content" in phases:
            content = asyncio.run(_content_phase(gateway_port, args.content_rate, args.seconds))
            print(
                f"{'connected content':>20}: {content['rate']:8.0f} req/s offered "
                f"{content['done'] / content['elapsed']:9.0f} answered/s | p50 "
                f"{pct(content['latencies'], 0.5):6.2f} ms p99 "
                f"{pct(content['latencies'], 0.99):6.2f} ms | statuses {content['statuses']}"
            )
            checks["connected content p99 < 10 ms at 1,000 req/s"] = (
                pct(content["latencies"], 0.99) < 10
            )
        print(f"machine speed after the phases: {machine_speed():.0f} ms (lower is faster)")
        for name, ok in checks.items():
            print(f"  [{'met' if ok else 'MISSED'}] {name}")
    finally:
        # SIGINT under cProfile: uvicorn re-raises the signal after shutting down, and only
        # KeyboardInterrupt lets cProfile write its stats on the way out.
        gateway.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
        gateway.wait(timeout=20)
        receiver.terminate()


if __name__ == "__main__":
    main()
