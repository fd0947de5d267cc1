"""Delivery throughput: attribute objects/s and client CPU seconds per million objects.

The sink (headwater.testing.sink) runs in its own process and answers like Braze's
/users/track after a fixed delay, so the CPU measured here is the client's alone
(``resource.getrusage(RUSAGE_SELF)``: user + system time of this process).

Two scenarios:

* ``budget`` (issue 10): the client with its destination's defaults (no configuration)
  against a sink holding a Braze-like budget (3,000 requests per 3 s window, 100 ms round
  trip). The client starts cold at a window's start; the figure is the objects accepted
  within ``--windows`` whole windows over their length, beside the budget's own figure
  (3,000 x 75 / 3 s = 75,000 objects/s). Targets: >= 90 % of the budget, and 429s in no
  more than one window while the client learns.
* ``capacity``: what the client can push with no budget in the way (a fixed concurrency,
  a sink without limits), beside a sequential baseline. Targets: >= 75,000 objects/s at
  100 ms on at most one core, <= 15 CPU s per million objects.

    python -m bench.delivery                                  # both
    python -m bench.delivery --scenarios budget --windows 5
    python -m bench.delivery --scenarios capacity --objects 1000000 --delays 0.1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import resource
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from itertools import cycle

from headwater.braze.budget import BucketLimit, RateBudget, default_limits
from headwater.braze.client import BrazeClient, TrackItem
from headwater.braze.limits import MAX_OBJECTS_PER_REQUEST
from headwater.braze.ratelimit import RateGovernor
from headwater.testing import free_port

TARGET_OBJECTS_PER_SECOND = 75_000
TARGET_CPU_SECONDS_PER_MILLION = 15.0
TARGET_SHARE_OF_BUDGET = 0.9
TARGET_WINDOWS_WITH_429 = 1
API_KEY = "bench-key-not-a-secret"
UNLIMITED = {"users.track": BucketLimit(10**9, 1)}  # capacity: no budget in the way


@contextlib.contextmanager
def sink_process(delay_seconds: float, budget: BucketLimit | None = None) -> Iterator[str]:
    """Start the sink in a child process; yield its URL once it accepts connections."""
    port = free_port()
    command = [sys.executable, "-m", "headwater.testing.sink", "--port", str(port),
               "--delay", str(delay_seconds)]  # fmt: skip
    if budget is not None:
        command += ["--rate-limit", str(budget.limit), "--rate-window", str(budget.window_seconds)]
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


def attribute_item(i: int) -> TrackItem:
    """A typical sync row: an external id and a handful of changed attributes."""
    return TrackItem(
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


def attribute_items(count: int) -> list[TrackItem]:
    return [attribute_item(i) for i in range(count)]


POOL_SIZE = 150_000


def lazy_items(count: int) -> Iterable[TrackItem]:
    """``count`` items without holding them all (a budget run sends millions): payloads
    built once, in a pool of distinct objects that is cycled, each item with its own ref.
    Building the objects is the sync's cost (bench.sync_e2e), not the client's."""
    pool = [attribute_item(i).payload for i in range(min(count, POOL_SIZE))]
    return (TrackItem("attributes", payload, i) for i, payload in zip(range(count), cycle(pool)))


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
                         budget=RateBudget(UNLIMITED), adaptive=False, validate=validate,
                         http=http)  # fmt: skip
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


async def measure_budget(url: str, budget: BucketLimit, windows: int, http: str) -> dict:
    """The destination's defaults against the sink's budget, from a cold start at the
    beginning of a window; what was accepted within ``windows`` whole windows."""
    per_window = budget.limit * MAX_OBJECTS_PER_REQUEST
    client = BrazeClient(url, API_KEY, http=http)  # no configuration: the defaults
    answers: list[tuple[float, int | None]] = []
    send = client._sender.send

    async def recording_send(*args, **kwargs):
        try:
            status, headers, raw = await send(*args, **kwargs)
        except Exception:
            answers.append((time.time(), None))
            raise
        answers.append((time.time(), status))
        return status, headers, raw

    client._sender.send = recording_send  # the bench's own view of every answer
    window = budget.window_seconds
    await asyncio.sleep(math.ceil(time.time() / window) * window - time.time())
    start = time.time()
    deadline = start + windows * window
    in_time = 0

    def on_results(results) -> None:
        nonlocal in_time
        if time.time() <= deadline:
            in_time += sum(1 for r in results if r.ok)

    cpu = cpu_seconds()
    async with client:
        summary = await client.track(lazy_items(per_window * windows), on_results=on_results)
    cpu = cpu_seconds() - cpu
    limited = [t for t, status in answers if status == 429]
    return {
        "budget_objects_per_second": per_window / window,
        "objects_per_second": in_time / (windows * window),
        "share": in_time / (per_window * windows),
        "objects": in_time,
        "windows": windows,
        "window_seconds": window,
        "limit": budget.limit,
        "requests": summary.requests,
        "rate_limited": len(limited),
        "windows_with_429": len({math.floor(t / window) for t in limited}),
        "failures": Counter(s for _, s in answers if s is None or s >= 500).total(),
        "peak_concurrency": client.concurrency.peak,
        "cuts": client.concurrency.cuts,
        "cores": cpu / (time.time() - start),
    }


def run_budget(args, http: str) -> bool:
    default = default_limits()["users.track"]
    budget = BucketLimit(args.sink_limit or default.limit, default.window_seconds)
    with sink_process(args.budget_delay, budget) as url:
        print(f"sink answering after {args.budget_delay * 1000:.0f} ms with a budget of "
              f"{budget.limit:,} requests / {budget.window_seconds:g} s ({url}); the client "
              f"has its defaults ({default.limit:,} / {default.window_seconds:g} s)")  # fmt: skip
        r = asyncio.run(measure_budget(url, budget, args.windows, http))
    print(f"  {http}: budget {r['budget_objects_per_second']:,.0f} obj/s "
          f"({r['limit']:,} requests x {MAX_OBJECTS_PER_REQUEST} / {r['window_seconds']:g} s); "
          f"achieved {r['objects_per_second']:,.0f} obj/s over {r['windows']} windows "
          f"= {r['share']:.1%} of the budget")  # fmt: skip
    print(f"  429s: {r['rate_limited']} in {r['windows_with_429']} window(s); 5xx/dropped: "
          f"{r['failures']}; concurrency peaked at {r['peak_concurrency']} "
          f"({r['cuts']} cuts); client {r['cores']:.2f} cores")  # fmt: skip
    meets = (
        r["share"] >= TARGET_SHARE_OF_BUDGET and r["windows_with_429"] <= TARGET_WINDOWS_WITH_429
    )
    print(f"  target >= {TARGET_SHARE_OF_BUDGET:.0%} of the budget, 429s in <= "
          f"{TARGET_WINDOWS_WITH_429} window: {'met' if meets else 'NOT met'}")  # fmt: skip
    return meets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Braze delivery throughput into a local sink")
    parser.add_argument("--scenarios", nargs="+", default=["budget", "capacity"],
                        choices=["budget", "capacity"])  # fmt: skip
    parser.add_argument("--windows", type=int, default=5, help="budget: windows measured")
    parser.add_argument("--budget-delay", type=float, default=0.1, help="budget: round trip")
    parser.add_argument("--sink-limit", type=int, default=None,
                        help="budget: the sink's requests per 3 s when it is not Braze's "
                             "documented one (the client learns it from the headers)")  # fmt: skip
    parser.add_argument("--objects", type=int, default=600_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--baseline-requests", type=int, default=40)
    parser.add_argument("--delays", type=float, nargs="+", default=[0.1, 0.0])
    parser.add_argument("--validate", action="store_true", help="validate objects client-side")
    parser.add_argument("--http", nargs="+", default=["aiohttp", "httpx"],
                        help="HTTP engines to measure (aiohttp needs the package)")  # fmt: skip
    args = parser.parse_args(argv)

    print("$ python -m bench.delivery " + " ".join(argv if argv is not None else sys.argv[1:]))
    ok = True
    if "budget" in args.scenarios:
        ok &= run_budget(args, args.http[0])
    if "capacity" not in args.scenarios:
        return 0 if ok else 1
    items = attribute_items(args.objects)
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
