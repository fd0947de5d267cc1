"""End to end: a Parquet model of N users x 10 attributes synced into the sandbox.

    python -m bench.sync_e2e --rows 1000000

The sandbox runs as its own process (file-backed SQLite, as a user runs it); the sync runs
here. Prints wall time and objects/s for the first (full) sync and for a second sync after
1% of rows changed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb
import httpx

from headwater.config import load_project
from headwater.syncs.engine import run_sync
from headwater.testing import free_port

KEY = "bench-key"


def write_model(path: Path, rows: int, bump: bool = False) -> None:
    change = "CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END" if bump else "0"
    duckdb.sql(
        f"""
        COPY (
          SELECT 'U' || i AS id, 'user' || i || '@example.com' AS email, 'First' || (i % 997) AS first_name,
                 'Last' || (i % 991) AS last_name, (i % 5000) + {change} AS points, i % 7 = 0 AS vip,
                 (i % 313) * 1.5 AS spend, 'tier' || (i % 4) AS tier, 'city' || (i % 211) AS city,
                 ['a', 'b'] AS tags
          FROM range({rows}) t(i)
        ) TO '{path}' (FORMAT parquet)
        """
    )


def start_sandbox(db: str, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "headwater",
            "sandbox",
            "--db",
            db,
            "--key",
            KEY,
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/_sandbox/counters", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("sandbox did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hw-e2e-"))
    (work / "data").mkdir()
    port = free_port()
    sandbox = start_sandbox(str(work / "sandbox.db"), port)
    try:
        (work / "headwater.yml").write_text(
            textwrap.dedent(
                f"""
                destinations:
                  braze: {{url: "http://127.0.0.1:{port}", api_key: {KEY}, max_concurrency: {args.concurrency}}}
                sources:
                  users: {{type: parquet, path: data/users.parquet}}
                models:
                  users:
                    sql: select * from users
                    primary_key: id
                    columns:
                      id: {{type: string, required: true}}
                      email: {{type: string}}
                      first_name: {{type: string}}
                      last_name: {{type: string}}
                      points: {{type: integer}}
                      vip: {{type: boolean}}
                      spend: {{type: float}}
                      tier: {{type: string}}
                      city: {{type: string}}
                      tags: {{type: array}}
                syncs:
                  users:
                    model: users
                    destination: braze
                    identifier: {{external_id: id}}
                    mapping: {{email: email, first_name: first_name, last_name: last_name, points: points,
                              vip: vip, spend: spend, tier: tier, home_city: city, tags: tags}}
                """
            )
        )
        print(
            f"command: python -m bench.sync_e2e --rows {args.rows} --concurrency {args.concurrency}"
        )
        write_model(work / "data/users.parquet", args.rows)
        for label, bump in (
            ("first sync (every row new)", False),
            ("second sync (1% changed)", True),
        ):
            if bump:
                write_model(work / "data/users.parquet", args.rows, bump=True)
            started = time.perf_counter()
            report = run_sync(load_project(work), "users")
            seconds = time.perf_counter() - started
            print(
                f"{label}: {report.sent:,} objects in {seconds:.1f}s = {report.sent / seconds:,.0f} objects/s "
                f"({report.requests:,} requests, {report.data_points:,} data points, status {report.status})"
            )
        users = httpx.get(f"http://127.0.0.1:{port}/_sandbox/counters", timeout=60).json()["users"]
        print(f"sandbox holds {users:,} users")
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
        if not os.environ.get("KEEP_BENCH_DIR"):
            import shutil

            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
