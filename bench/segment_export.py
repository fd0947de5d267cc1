"""Segment export benchmark: a 1M-member segment from the sandbox, landed.

    python -m bench.segment_export [--members 1000000] [--quick]

The sandbox runs as its own process over a database written beforehand (profiles with 4
custom attributes each, as ``/users/track`` would leave them), with one segment holding
every user. The export runs as ``headwater export segments`` does (``run_segments_export``)
and is timed in its phases from its own progress reports:

* Braze's side: from the request until the download link serves the file (the sandbox
  writing ~200 files of NDJSON into one ZIP; Braze itself takes minutes to hours);
* Headwater's side: download, unzip, parse, land (members de-duplicated, written as
  Parquet), membership history and segments table: the issue's target, under 30 s.

Then a second run over the same segment: the history merges 1M existing rows.
``--quick`` runs 5,000 members (the suite's smoke test).
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from headwater.braze.profile import new_profile
from headwater.config import parse_project
from headwater.exports.segments import run_segments_export
from headwater.sandbox.store import Store

KEY = "bench-segment-export-key"
TARGET_SECONDS = 30.0
WRITE_CHUNK = 50_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_profiles(db: Path, members: int) -> None:
    """The sandbox's store as ``members`` users with 4 custom attributes would leave it."""
    store = Store(str(db))
    now = datetime.now(UTC)
    try:
        for start in range(0, members, WRITE_CHUNK):
            batch = []
            for i in range(start, min(start + WRITE_CHUNK, members)):
                profile = new_profile(f"{i:024x}", now)
                profile["external_id"] = f"customer-{i}"
                profile["email"] = f"customer{i}@example.com"
                profile["first_name"] = f"First{i % 997}"
                profile["custom_attributes"] = {
                    "tier": ("gold", "silver", "bronze")[i % 3],
                    "points": i % 5000,
                    "vip": i % 7 == 0,
                    "score": (i % 1000) / 7.0,
                }
                batch.append(profile)
            store.write(batch)
    finally:
        store.close()


def start_sandbox(db: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "headwater", "sandbox", "--db", str(db), "--key", KEY,
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # loading a million profiles takes a while
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"sandbox exited: {process.stderr.read().decode()}")
        try:
            httpx.get(f"{url}/_sandbox/counters", timeout=5)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the sandbox did not start within 300 s")


class Phases:
    """Times the run's phases from its progress reports."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}

    def __call__(self, _name: str, phase: str, _done: int, _total: int | None) -> None:
        now = time.monotonic()
        self.first.setdefault(phase, now)
        self.last[phase] = now


def run_once(project, label: str) -> dict:
    phases = Phases()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    report = run_segments_export(project, progress=phases)
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    if report.status != "succeeded":
        raise SystemExit(f"{label}: the export {report.status}: {report.error}")
    end = phases.last["landed"]
    ready = phases.first["download"]
    (segment,) = report.segments
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    figures = {
        "run": label,
        "members": segment.members,
        "zip_mb": segment.bytes / 1e6,
        "braze_side_s": ready - phases.start,
        "headwater_side_s": end - ready,
        "download_s": phases.last["download"] - ready,
        "parse_s": phases.last.get("parse", end) - phases.last["download"],
        "land_s": end - phases.last.get("parse", end),
        "cpu_s": cpu,
        "entered": segment.entered,
        "stayed": segment.stayed,
    }
    print(
        f"{label}: {segment.members:,} members, {figures['zip_mb']:.1f} MB ZIP · Braze side "
        f"(sandbox writes the files) {figures['braze_side_s']:.1f} s · Headwater side "
        f"{figures['headwater_side_s']:.1f} s = download {figures['download_s']:.1f} + "
        f"unzip & parse {figures['parse_s']:.1f} + land & history {figures['land_s']:.1f} · "
        f"this process's CPU {cpu:.1f} s · entered {segment.entered:,}, stayed {segment.stayed:,}"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="5,000 members (smoke test)")
    args = parser.parse_args(argv)
    members = 5000 if args.quick else args.members

    with tempfile.TemporaryDirectory(prefix="hw-bench-segments-") as tmp:
        root = Path(tmp)
        db = root / "sandbox.db"
        began = time.monotonic()
        write_profiles(db, members)
        print(f"setup: {members:,} profiles written in {time.monotonic() - began:.1f} s")
        process, url = start_sandbox(db)
        try:
            httpx.post(f"{url}/_sandbox/segments", json={"name": "Everyone", "id": "everyone"},
                       timeout=30).raise_for_status()  # fmt: skip
            os.environ["HW_BENCH_KEY"] = KEY
            project = parse_project(
                f"destinations:\n  braze: {{url: '{url}', api_key: '${{HW_BENCH_KEY}}'}}\n"
                "exports:\n  segments: {destination: braze}\n",
                root=root,
            )
            print(f"command: python -m bench.segment_export --members {members} (pid {os.getpid()}, "
                  f"sandbox pid {process.pid}, {os.cpu_count()} CPUs)")  # fmt: skip
            first = run_once(project, "first run")
            second = run_once(project, "second run")
        finally:
            process.terminate()
            process.wait(timeout=60)
    worst = max(first["headwater_side_s"], second["headwater_side_s"])
    verdict = "met" if worst < TARGET_SECONDS else "NOT met"
    print(f"target: landed (download, parse, land, history) in under {TARGET_SECONDS:.0f} s: "
          f"{verdict} ({worst:.1f} s at worst)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
