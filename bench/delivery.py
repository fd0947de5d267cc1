"""Delivery throughput: attribute objects/s and client CPU seconds per million objects.

The sink (headwater.testing.sink) runs in its own process and answers like Braze's
/users/track after a fixed delay, so the CPU measured here is the client's alone
(``resource.getrusage(RUSAGE_SELF)``: user + system time of this process). Each scenario is
measured beside a sequential baseline (one request at a time) in the same run.

    python -m bench.delivery                      # 100 ms and 0 ms round trips
    python -m bench.delivery --objects 1000000 --concurrency 200 --delays 0.1

Targets: >= 75,000 attribute objects/s at 100 ms on at most one core, and <= 15 CPU s
per million objects.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

from headwater.braze.client import BrazeClient, TrackItem
from headwater.braze.ratelimit import RateGovernor
from headwater.testing import free_port

TARGET_OBJECTS_PER_SECOND = 75_000
TARGET_CPU_SECONDS_PER_MILLION = 15.0
API_KEY = "bench-key-not-a-secret"


@contextlib.contextmanager
def sink_process(delay_seconds: float) -> Iterator[str]:
    """Start the sink in a child process; yield its URL once it accepts connections."""
    port = free_port()
    command = [sys.executable, "-m", "headwater.testing.sink", "--port", str(port),
               "--delay", str(delay_seconds)]  # fmt: skip
    proc = subprocess.Popen(command)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("sink did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def attribute_items(count: int) -> list[TrackItem]:
    """Typical sync rows: an external id and a handful of changed attributes."""
    return [
        TrackItem(
            "attributes",
            {
                "external_id": f"customer-{i:08d}",
                "email": f"customer{i}@example.com",
                "loyalty_points": i % 5000,
                "is_vip": i % 7 == 0,
                "tier": ("bronze", "silver", "gold")[i % 3],
                "signed_up_at": "2024-05-02T10:00:00Z",
            },
            i,
        )
        for i in range(count)
    ]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(
    url: str, items: list[TrackItem], concurrency: int, validate: bool, http: str
) -> dict:
    accepted = 0

    def on_results(results) -> None:
        nonlocal accepted
        accepted += sum(1 for r in results if r.ok)

    client = BrazeClient(url, API_KEY, max_concurrency=concurrency, governor=RateGovernor(),
                         validate=validate, http=http)  # fmt: skip
    async with client:
        # Warm the connection pool so the figures are steady-state, as in a long sync.
        await client.track(items[: 75 * concurrency])
        cpu, wall = cpu_seconds(), time.perf_counter()
        summary = await client.track(items, on_results=on_results)
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if accepted != len(items) or summary.failed:
        raise SystemExit(f"bench broken: {accepted} of {len(items)} accepted, {summary}")
    return {
        "objects": len(items),
        "requests": summary.requests,
        "seconds": wall,
        "objects_per_second": len(items) / wall,
        "cpu_seconds": cpu,
        "cores": cpu / wall,
        "cpu_s_per_million": cpu / len(items) * 1_000_000,
    }


def line(name: str, r: dict) -> str:
    return (
        f"  {name:<34} {r['objects']:>9,} obj {r['requests']:>6,} req {r['seconds']:7.2f} s "
        f"{r['objects_per_second']:>10,.0f} obj/s  cpu {r['cpu_seconds']:6.2f} s "
        f"({r['cores']:.2f} cores)  {r['cpu_s_per_million']:6.2f} cpu-s/M"
    )


def run_scenario(url: str, items: list[TrackItem], args, delay: float, http: str) -> bool:
    """The sequential baseline and the concurrent run for one engine; True if on target."""
    baseline_items = items[: 75 * args.baseline_requests]
    base = asyncio.run(measure(url, baseline_items, 1, args.validate, http))
    print(line(f"{http}: sequential (1 at a time)", base))
    result = asyncio.run(measure(url, items, args.concurrency, args.validate, http))
    print(line(f"{http}: concurrent ({args.concurrency} in flight)", result))
    print(f"  speed-up x{result['objects_per_second'] / base['objects_per_second']:.1f}")
    ok = True
    if delay >= 0.1:
        meets = result["objects_per_second"] >= TARGET_OBJECTS_PER_SECOND and result["cores"] <= 1.0
        print(f"  target >= {TARGET_OBJECTS_PER_SECOND:,} obj/s on <= 1 core: "
              f"{'met' if meets else 'NOT met'}")  # fmt: skip
        ok &= meets
    meets_cpu = result["cpu_s_per_million"] <= TARGET_CPU_SECONDS_PER_MILLION
    print(f"  target <= {TARGET_CPU_SECONDS_PER_MILLION:g} cpu-s per million objects: "
          f"{'met' if meets_cpu else 'NOT met'}")  # fmt: skip
    return ok and meets_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Braze delivery throughput into a local sink")
    parser.add_argument("--objects", type=int, default=600_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--baseline-requests", type=int, default=40)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.1, 0.0])
    parser.add_argument("--validate", action="store_true", help="validate objects client-side")
    parser.add_argument("--http", nargs="+", default=["aiohttp", "httpx"],
                        help="HTTP engines to measure (aiohttp needs the package)")  # fmt: skip
    args = parser.parse_args(argv)

    print("$ python -m bench.delivery " + " ".join(argv if argv is not None else sys.argv[1:]))
    items = attribute_items(args.objects)
    ok = True
    for delay in args.delays:
        with sink_process(delay) as url:
            print(f"sink answering after {delay * 1000:.0f} ms ({url})")
            for http in args.http:
                met = run_scenario(url, items, args, delay, http)
                if http == args.http[0]:  # the engine the client uses; the rest compare
                    ok &= met
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
