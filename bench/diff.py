"""Warehouse-native diff: a model of N rows x 20 attributes, 1% of rows with one change.

Runs one sync cycle the way the sync engine does it, on a file-backed DuckDB, and times:
load the model, diff it against the snapshot, stream the diff out as Arrow, commit the
new snapshot; plus peak RSS and data points sent versus a full resend. In the same run it
times two reference floors on the same tables: a bare attribute-level join (every column
compared with IS DISTINCT FROM) and a hash-column comparison.

    python -m bench.diff --rows 1000000
    python -m bench.diff --rows 10000000      # target: diff < 6 s, whole cycle < 3 GB RSS
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from headwater.engines import DuckDBEngine
from headwater.syncs.diff import changed_flags, compute_diff, iter_diff
from headwater.syncs.snapshot import commit_accepted, render_sql, row_hash, snapshot_table

ATTRIBUTES = 20
MODEL = "model"
SYNC = "bench"


def attribute_sql(i: int, changed: bool) -> str:
    """Column ``a{i}``: mixed types; with ``changed``, 1% of rows differ in one column."""
    kinds = [
        "CAST((r * {k}) % 1000003 AS BIGINT)",
        "'v' || CAST((r * {k}) % 99991 AS VARCHAR)",
        "CAST(((r * {k}) % 10007) AS DOUBLE) / 7",
        "((r + {k}) % 3 = 0)",
    ]
    expr = kinds[i % len(kinds)].format(k=i + 3)
    if i == 7:
        expr = f"CASE WHEN r % 11 = 0 THEN NULL ELSE {expr} END"
    if i == 9:
        expr = f"[CAST(r % 5 AS VARCHAR), CAST(r % {i + 2} AS VARCHAR)]"
    if changed:
        # Row r changes when r % 100 == 42; which column changes rotates with r.
        hit = f"r % 100 = 42 AND (r // 100) % {ATTRIBUTES} = {i}"
        if i == 9:
            new = "['changed']"
        elif i % len(kinds) == 0:
            new = f"({expr}) + 1"
        elif i % len(kinds) == 1:
            new = f"({expr}) || 'x'"
        elif i % len(kinds) == 2:
            new = f"({expr}) + 0.5"
        else:
            new = f"NOT ({expr})"
        if i == 7:
            new = "NULL"  # a change to null: must be sent as an unset
        expr = f"CASE WHEN {hit} THEN {new} ELSE {expr} END"
    return f"{expr} AS a{i:02d}"


def model_sql(rows: int, changed: bool) -> str:
    attrs = ", ".join(attribute_sql(i, changed) for i in range(ATTRIBUTES))
    return f"CREATE OR REPLACE TABLE {MODEL} AS SELECT r AS id, {attrs} FROM range({rows}) t(r)"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    def __init__(self) -> None:
        self.figures: list[tuple[str, float]] = []

    def __call__(self, label: str):
        timer = self

        class _Span:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.figures.append((label, time.perf_counter() - self.start))
                print(f"  {label:<44} {timer.figures[-1][1]:8.2f} s", flush=True)

        return _Span()


def commit_in_batches(engine: DuckDBEngine, keys, batch_rows: int) -> int:
    applied = 0
    for start in range(0, len(keys), batch_rows):
        applied += commit_accepted(engine, SYNC, keys.slice(start, batch_rows))
    return applied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit")
    parser.add_argument("--commit-batch", type=int, default=10_000, help="keys per commit")
    parser.add_argument("--batch-size", type=int, default=50_000, help="Arrow rows per batch")
    args = parser.parse_args(argv)
    print("command:", " ".join([Path(sys.executable).name, "-m", "bench.diff", *sys.argv[1:]]))
    columns = [f"a{i:02d}" for i in range(ATTRIBUTES)]
    t = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        engine = DuckDBEngine(str(Path(tmp) / "warehouse.duckdb"))
        engine.execute(f"SET memory_limit = '{args.memory_limit}'")
        engine.execute(f"SET temp_directory = '{tmp}/spill'")
        print(f"rows={args.rows:,} attributes={ATTRIBUTES} memory_limit={args.memory_limit}")

        print("first run (everything is new):")
        with t("load model (generate in DuckDB)"):
            engine.execute(model_sql(args.rows, changed=False))
        with t("diff (all added)"):
            first = compute_diff(engine, SYNC, MODEL, "id", columns)
        with t("commit snapshot (all keys, one commit)"):
            keys = engine.fetch_arrow("SELECT hw_key FROM hw_diff_bench").column(0)
            commit_accepted(engine, SYNC, keys)
        del keys

        print("second run (1% of rows with one changed attribute):")
        with t("load model"):
            engine.execute(model_sql(args.rows, changed=True))
        engine.execute("CHECKPOINT")
        with t("diff (cold)"):
            result = compute_diff(engine, SYNC, MODEL, "id", columns)
        diff_seconds = t.figures[-1][1]
        snap = snapshot_table(SYNC)
        print("reference floors on the same tables (before commit):")
        distinct = " OR ".join(f"m.{c} IS DISTINCT FROM s.{c}" for c in columns)
        with t("bare attribute-level join (count changed)"):
            bare = engine.fetch_all(
                f"SELECT count(*) FROM {MODEL} m JOIN {snap} s ON m.id = s.hw_key WHERE {distinct}"
            )[0][0]
        with t("hash-column comparison (count changed)"):
            hashed = engine.fetch_all(
                render_sql(
                    engine,
                    f"SELECT count(*) FROM (SELECT id, {row_hash(engine, MODEL, columns)} AS h "
                    f"FROM {MODEL}) m JOIN {snap} s ON m.id = s.hw_key WHERE m.h <> s.hw_hash",
                )
            )[0][0]
        with t("diff again (warm cache, as the floors ran)"):
            result = compute_diff(engine, SYNC, MODEL, "id", columns)
        warm_seconds = t.figures[-1][1]
        sent_points = 0
        accepted = []
        with t("stream diff as Arrow + decode masks"):
            for batch in iter_diff(engine, result, args.batch_size):
                flags = changed_flags(batch, columns)
                sent_points += sum(pc.sum(f.cast("int64")).as_py() or 0 for f in flags.values())
                accepted.append(batch.column("hw_key"))
        keys = pa.chunked_array(accepted, type=pa.int64()) if accepted else pa.array([], pa.int64())
        with t(f"commit snapshot ({args.commit_batch:,} keys per commit)"):
            applied = commit_in_batches(engine, keys, args.commit_batch)

        engine.close()

    full_points = args.rows * ATTRIBUTES
    print("results:")
    print(f"  first run: added={first.added:,}")
    print(
        f"  second run: added={result.added:,} changed={result.changed:,} "
        f"removed={result.removed:,} unchanged={result.unchanged:,} committed={applied:,}"
    )
    print(f"  reference counts: bare join={bare:,} (diff changed should match)")
    print(f"                    hash comparison={hashed:,}")
    print(
        f"  data points sent: {sent_points:,} vs full resend {full_points:,} "
        f"({full_points / max(sent_points, 1):,.0f}x fewer)"
    )
    print(
        f"  diff time: {diff_seconds:.2f} s cold, {warm_seconds:.2f} s warm; "
        f"peak RSS: {peak_rss_mb():,.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
