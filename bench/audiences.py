"""Audiences: N persons, 20 audiences x 3 splits (+ a 10 % holdout), a day where 1 % change.

Day 0 enters everyone (setup, timed but not the target). Day 1 changes 1 % of the persons
(0.8 % with new values, 0.1 % new, 0.1 % gone) and times what a run does before delivery:
the membership diff of all 20 audiences (one pass over the model, as ``headwater
audiences sync`` runs them) and building every entry's and exit's Braze object through the
engine's own code path. ``--per-audience`` also times the other way to diff: one join per
audience, as 20 separate runs would.

    python -m bench.audiences                   # 10M persons; target: diff + sends < 10 s
    python -m bench.audiences --persons 1000000 --per-audience
    python -m bench.audiences --quick           # 20k persons, for the smoke test
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from headwater.audiences import membership
from headwater.audiences.engine import AudienceReport, _Builder, _Run, plan_for
from headwater.config import parse_project
from headwater.engines import DuckDBEngine

AUDIENCES = 20
CPU: dict[str, float] = {}
MODEL = "people"
TABLE = "hw_model_people"
KEY = "person_id"

# 20 conditions over the model's columns, 5 % to 60 % of persons each.
CONDITIONS = [
    "ltv >= 500", "ltv >= 900", "visits BETWEEN 10 AND 40", "country = 'FR'",
    "country IN ('DE', 'AT', 'CH') AND ltv > 200", "score > 0.8", "score < 0.1 OR visits > 90",
    "days_since < 7", "days_since BETWEEN 30 AND 90", "plan = 'pro'", "plan IN ('team', 'pro')",
    "ltv < 50 AND visits > 20", "country = 'US' AND plan = 'free'", "score BETWEEN 0.4 AND 0.6",
    "visits % 7 = 0", "ltv >= 100 AND days_since < 30", "plan = 'free' AND days_since > 180",
    "country NOT IN ('FR', 'US')", "score * ltv > 400", "visits < 3",
]  # fmt: skip


def model_sql(persons: int, day: int) -> str:
    """The model on ``day`` 0 or 1: on day 1, persons with r % 1000 < 8 have new values,
    r % 1000 == 8 are gone and as many new ones (r >= persons) arrive."""
    changed = "r % 1000 < 8" if day else "FALSE"
    rows = f"range({persons + persons // 1000 if day else persons})"
    gone = f"WHERE NOT (r % 1000 = 8 AND r < {persons})" if day else ""
    mix = f"((r * 2654435761 + CASE WHEN {changed} THEN 977 ELSE 0 END) % 1000003)"
    return f"""
CREATE OR REPLACE TABLE {TABLE} AS
SELECT 'P' || lpad(CAST(r AS VARCHAR), 9, '0') AS {KEY},
       CAST({mix} % 1000 AS INTEGER) AS ltv,
       CAST(({mix} // 1000) % 100 AS INTEGER) AS visits,
       ['FR', 'DE', 'US', 'GB', 'AT', 'CH', 'ES', 'IT'][CAST({mix} % 8 AS INTEGER) + 1] AS country,
       ({mix} % 10007) / 10007.0 AS score,
       CAST(({mix} // 7) % 365 AS INTEGER) AS days_since,
       ['free', 'team', 'pro'][CAST(({mix} // 3) % 3 AS INTEGER) + 1] AS plan
FROM {rows} t(r) {gone}
"""


def project_text() -> str:
    columns = {KEY: "string", "ltv": "integer", "visits": "integer", "country": "string",
               "score": "float", "days_since": "integer", "plan": "string"}  # fmt: skip
    lines = [
        "destinations:",
        "  braze: {url: 'http://127.0.0.1:9', api_key: bench}",
        "sources:",
        "  crm: {type: csv, path: people.csv}",
        "models:",
        f"  {MODEL}:",
        "    sql: select * from crm",
        f"    primary_key: {KEY}",
        "    columns:",
        *(f"      {c}: {{type: {t}}}" for c, t in columns.items()),
        "audiences:",
    ]
    for i, condition in enumerate(CONDITIONS[:AUDIENCES]):
        lines += [
            f"  aud{i:02d}:",
            f"    model: {MODEL}",
            f'    where: "{condition}"',
            "    destination: braze",
            "    splits: {a: 30, b: 30, c: 30}",
            "    holdout: 10",
        ]
    return "\n".join(lines) + "\n"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn):
    """Run ``fn``; print its wall time and the CPU time of the whole process (DuckDB's
    threads included): on a shared machine the CPU time says what an idle one would take."""
    started, cpu = time.perf_counter(), time.process_time()
    value = fn()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"  {label:<52} {seconds:8.2f} s  (CPU {cpu:7.2f} s)", flush=True)
    CPU[label] = cpu
    return value, seconds


class _NoState:
    """Stands in for the state store: the bench sends and records nothing."""


def build_sends(project, engine, plans) -> tuple[int, int, int]:
    """Every audience's entries and exits as Braze objects, through the engine's code."""
    changes = objects = points = 0
    for name, plan in plans.items():
        report = AudienceReport(audience=name, run_id=None, status="running", dry_run=True)
        counts = membership.count_changes(engine, MODEL, plan)
        changes += sum(counts.values())
        builder = _Builder(project, name, KEY)
        run = _Run(project, name, MODEL, engine, _NoState(), None, report, builder, plan)
        for _item in run.items():
            objects += 1
        points += sum(run.costs.values())
    return changes, objects, points


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 persons (smoke test)")
    parser.add_argument("--memory-limit", default="4GB", help="DuckDB memory_limit")
    parser.add_argument(
        "--per-audience", action="store_true", help="also time one diff per audience"
    )
    args = parser.parse_args(argv)
    persons = 20_000 if args.quick else args.persons
    print("command:", " ".join([Path(sys.executable).name, "-m", "bench.audiences", *sys.argv[1:]]))
    print(f"persons={persons:,} audiences={AUDIENCES} splits=3 + holdout")
    project = parse_project(project_text())
    with tempfile.TemporaryDirectory() as tmp:
        engine = DuckDBEngine(str(Path(tmp) / "warehouse.duckdb"))
        engine.execute(f"SET memory_limit = '{args.memory_limit}'")
        engine.execute(f"SET temp_directory = '{tmp}/spill'")
        plans = {name: plan_for(project, name, KEY) for name in project.audiences}
        print("day 0 (everyone enters; setup):")
        timed("model (generated in DuckDB)", lambda: engine.execute(model_sql(persons, 0)))
        ready = membership.ensure_tables(engine, MODEL, TABLE, KEY, list(plans.values()))
        plans = {plan.name: plan for plan in ready}
        timed("membership diff, 20 audiences",
              lambda: membership.compute_delta(engine, MODEL, TABLE, KEY, list(plans.values())))  # fmt: skip

        def seed() -> int:
            """Day 0 as if every entry had been accepted: the state table written in one
            statement (committing 40M+ entries through ``membership.commit`` is the first
            run's cost, bound by delivery, and not what this measures)."""
            delta, state = membership.delta_table(MODEL), membership.state_table(MODEL)
            columns = [
                f"{p.column('new')} AS {p.column('split')}, {p.column('slot')}, "
                f"CAST(NULL AS VARCHAR) AS {p.column('ident')}"
                for p in plans.values()
            ]
            mask = " + ".join(
                f"CASE WHEN {p.column('new')} IS NOT NULL THEN {p.mask} ELSE 0 END"
                for p in plans.values()
            )
            engine.execute(
                f"CREATE OR REPLACE TABLE {state} AS SELECT hw_key, CAST({mask} AS BIGINT) "
                f"AS hw_members, {', '.join(columns)} FROM {delta}"
            )
            return engine.fetch_all(f"SELECT sum(bit_count(hw_members)) FROM {state}")[0][0]

        members, _ = timed("state written as if every entry was accepted", seed)
        print("day 1 (1 % of persons change):")
        timed("model", lambda: engine.execute(model_sql(persons, 1)))
        engine.execute("CHECKPOINT")
        _, diff_seconds = timed(
            "membership diff, 20 audiences in one pass",
            lambda: membership.compute_delta(engine, MODEL, TABLE, KEY, list(plans.values())),
        )
        (changes, objects, points), build_seconds = timed(
            "entries and exits -> Braze objects", lambda: build_sends(project, engine, plans)
        )
        per_audience = None
        if args.per_audience:

            def one_by_one() -> None:
                for plan in plans.values():
                    membership.compute_delta(engine, MODEL, TABLE, KEY, [plan])

            _, per_audience = timed("membership diff, one pass per audience (x20)", one_by_one)
        engine.close()
    total = diff_seconds + build_seconds
    cpu = (
        CPU["membership diff, 20 audiences in one pass"] + CPU["entries and exits -> Braze objects"]
    )
    print("results:")
    print(f"  day 0: {members:,} memberships committed")
    print(f"  day 1: {changes:,} changes -> {objects:,} objects, {points:,} data points")
    print(
        f"  diff {diff_seconds:.2f} s + sends built {build_seconds:.2f} s = {total:.2f} s "
        f"before delivery (target < 10 s at 10M persons); CPU {cpu:.2f} s"
    )
    if per_audience is not None:
        print(f"  one diff per audience instead: {per_audience:.2f} s for the diff alone")
    print(f"  peak RSS: {peak_rss_mb():,.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
