"""A whole sync, end to end, as a new user runs it: a 1M-row CSV of customers, 5 mapped
attributes, ``max_concurrency: 200``, into a Braze-shaped sink answering after 100 ms.

    python -m bench.sync_e2e --rows 1000000
    python -m bench.sync_e2e --rows 1000000 --engine postgres [--statements]

With ``--engine postgres`` the customers are a table in PostgreSQL (database
``hw_bench_sync``, created on 127.0.0.1:5432) and the model runs inside it (``source:``);
``--statements`` prints the slowest statements each sync issued there.

The sink (``headwater.testing.sink``) runs in its own process, so the CPU figures are this
process's alone (the sync, DuckDB's threads included). The machine is shared, so each
figure stands beside its floors, measured in the same run on the same data:

* the client alone sending the same objects, prebuilt (what the HTTP side costs);
* the bare diff query of the same model (what the engine side costs);
* staging the CSV into its typed model (what a dry run costs before any object);
  on PostgreSQL also checking the model in place, as a sync over a table keeping its key
  unique does instead (``materialize_model(..., in_place=True)``).

Then the first sync (every row new) and a second after 1 % of rows changed.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import duckdb

from bench.delivery import sink_process
from headwater.braze.client import BrazeClient, TrackItem
from headwater.braze.ratelimit import RateGovernor
from headwater.config import load_project
from headwater.models.model import materialize_model
from headwater.syncs.diff import compute_diff
from headwater.syncs.engine import run_sync

KEY = "bench-key-not-a-secret"
TARGET_OBJECTS_PER_SECOND = 50_000
TARGET_CORES = 1.5
TARGET_STAGE_SECONDS = 4.0
PG_TARGET_OBJECTS_PER_SECOND = 30_000
PG_TARGET_CHURN_SECONDS = 4.0
# The targets at 10M rows: a DuckDB first sync in under 4 minutes, a PostgreSQL
# 1 %-churn run in under 30 s (a first sync of 10M at Braze's ceiling takes minutes).
TEN_MILLION = 10_000_000
TARGET_10M_FIRST_SYNC_SECONDS = 240.0
PG_TARGET_10M_CHURN_SECONDS = 30.0
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_DATABASE = "hw_bench_sync"


def write_csv(path: Path, rows: int, bump: bool = False) -> None:
    """Customers with an id, an email, a name, points, a flag and a signup time (~67 bytes
    a row); ``bump`` changes the points of 1 % of them."""
    change = "CASE WHEN i % 100 = 0 THEN 1 ELSE 0 END" if bump else "0"
    duckdb.sql(
        f"""
        COPY (
          SELECT 'C' || lpad(CAST(i AS VARCHAR), 8, '0') AS id,
                 'customer' || i || '@example.com' AS email,
                 'First' || (i % 997) AS first_name,
                 (i % 5000) + {change} AS points,
                 i % 7 = 0 AS vip,
                 TIMESTAMP '2020-01-01' + to_seconds(i * 61) AS signed_up
          FROM range({rows}) t(i)
        ) TO '{path}' (HEADER, DELIMITER ',')
        """
    )


PROJECT = """
destinations:
  braze: {{url: "{url}", api_key: {key}, max_concurrency: {concurrency}}}
sources:
  customers: {{type: csv, path: data/customers.csv}}
models:
  customers:
    sql: select * from customers
    primary_key: id
    columns:
      id: {{type: string, required: true}}
      email: {{type: string}}
      first_name: {{type: string}}
      points: {{type: integer}}
      vip: {{type: boolean}}
      signed_up: {{type: time}}
syncs:
  customers:
    model: customers
    destination: braze
    identifier: {{external_id: id}}
    mapping: {{email: email, first_name: first_name, loyalty_points: points, is_vip: vip,
              signed_up_at: signed_up}}
"""


# The same project, its customers a table in PostgreSQL and the model run inside it.
PG_PROJECT = PROJECT.replace(
    "  customers: {{type: csv, path: data/customers.csv}}",
    '  app_db: {{type: sql, url: "{database}"}}',
).replace(
    "    sql: select * from customers",
    "    source: app_db\n    sql: select * from bench_customers",
)


def pg_database(name: str = PG_DATABASE) -> str:
    """A fresh database for the bench on the local server; its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    return f"{PG_SERVER}/{name}"


def pg_load(url: str, csv_path: Path) -> None:
    """The customers as a PostgreSQL table, loaded with COPY."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        conn.execute(
            "CREATE TABLE bench_customers (id text PRIMARY KEY, email text, first_name text, "
            "points integer, vip boolean, signed_up timestamp)"
        )
        with (
            conn.cursor().copy("COPY bench_customers FROM STDIN (FORMAT csv, HEADER true)") as copy,
            csv_path.open("rb") as f,
        ):
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        conn.execute("ANALYZE bench_customers")


def pg_bump(url: str) -> None:
    """A day later: 1 % of customers have new points."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        conn.execute("UPDATE bench_customers SET points = points + 1 WHERE right(id, 2) = '00'")


class StatementLog:
    """Times every statement the sync engine sends to PostgreSQL (``--statements``), and
    each streamed query up to its first batch (marked ``stream:``: a join that hashes a
    whole table does that work before the first row)."""

    def __init__(self) -> None:
        self.times: list[tuple[float, str]] = []

    def __enter__(self) -> StatementLog:
        from headwater.engines import SqlAlchemyEngine

        self._run = original = SqlAlchemyEngine._run
        self._iter = original_iter = SqlAlchemyEngine.iter_arrow
        log = self.times

        def timed(engine, sql, params=None):
            started = time.perf_counter()
            try:
                return original(engine, sql, params)
            finally:
                log.append((time.perf_counter() - started, " ".join(sql.split())))

        def timed_iter(engine, sql, *args, **kwargs):
            started = time.perf_counter()
            batches = original_iter(engine, sql, *args, **kwargs)
            first = next(batches, None)
            log.append((time.perf_counter() - started, "stream: " + " ".join(sql.split())))
            if first is not None:
                yield first
                yield from batches

        SqlAlchemyEngine._run = timed
        SqlAlchemyEngine.iter_arrow = timed_iter
        return self

    def __exit__(self, *exc: object) -> None:
        from headwater.engines import SqlAlchemyEngine

        SqlAlchemyEngine._run = self._run
        SqlAlchemyEngine.iter_arrow = self._iter

    def print_top(self, n: int = 8) -> None:
        total = sum(t for t, _ in self.times)
        print(f"    {len(self.times):,} statements, {total:.2f} s in PostgreSQL; slowest:")
        for seconds, sql in sorted(self.times, reverse=True)[:n]:
            print(f"    {seconds:7.3f} s  {sql[:150]}")


def print_floors(model, url: str, args: argparse.Namespace) -> None:
    """The floors every variant stands beside, on its own model: the bare diff query with
    an Arrow scan of its result, and the client alone sending the same objects prebuilt.
    Closes the model's engine."""
    with Measure() as m:
        diff = compute_diff(model.engine, "bench", model.table, "id", list(model.columns)[1:])
        scanned = sum(b.num_rows for b in model.engine.iter_arrow(
            f'SELECT * FROM "{diff.table}"', 10_000))  # fmt: skip
    model.engine.close()
    print(line("floor: bare diff query + Arrow scan", scanned, m))
    items = prebuilt_items(args.rows)
    with Measure() as m:
        accepted = asyncio.run(client_alone(url, items, args.concurrency))
    print(line("floor: client alone, prebuilt objects", accepted, m))


def run_postgres(args: argparse.Namespace, work: Path, url: str) -> bool:
    """The PostgreSQL variant: the same customers in a table, the model run inside it."""
    from headwater.engines import SqlAlchemyEngine

    ok, big = True, args.rows >= TEN_MILLION
    database = pg_database(args.database)
    pg_load(database, work / "data/customers.csv")
    (work / "headwater.yml").write_text(
        textwrap.dedent(PG_PROJECT).format(
            url=url, key=KEY, concurrency=args.concurrency, database=database
        )
    )
    project = load_project(work)
    print("PostgreSQL model (source: a PostgreSQL database)")
    if not args.no_floors:
        with StatementLog() as statements, Measure() as m:
            model = materialize_model(project, "customers")
        print(line("floor: run the model in PostgreSQL", 0, m, f"({model.row_count:,} rows)"))
        if args.statements:
            statements.print_top(4)
        assert isinstance(model.engine, SqlAlchemyEngine)
        print_floors(model, url, args)
        # What a sync does instead when the table keeps the key unique (its primary key).
        with StatementLog() as statements, Measure() as m:
            placed = materialize_model(project, "customers", in_place=True)
            placed.finish_checks()
        assert placed.engine is not None
        placed.engine.close()
        print(line("floor: check the model in place", 0, m, f"({placed.row_count:,} rows)"))
        if args.statements:
            statements.print_top(2)
    for label, bump in (("first sync (every row new)", False),
                        ("second sync (1% changed)", True)):  # fmt: skip
        if bump:
            pg_bump(database)
        with StatementLog() as statements, Measure() as m:
            report = run_sync(load_project(work), "customers")
        extra = f"{report.requests:,} requests, {report.data_points:,} data points, {report.status}"
        print(line(f"sync: {label}", report.sent, m, extra))
        if args.statements:
            statements.print_top(args.statements_shown)
        if bump:
            limit = PG_TARGET_10M_CHURN_SECONDS if big else PG_TARGET_CHURN_SECONDS
            meets = m.wall < limit
            print(f"  target 1 %-churn run < {limit:.0f} s: "
                  f"{'met' if meets else 'NOT met'}")  # fmt: skip
        else:
            rate = report.sent / m.wall
            meets = rate >= PG_TARGET_OBJECTS_PER_SECOND
            print(f"  target >= {PG_TARGET_OBJECTS_PER_SECOND:,} obj/s: "
                  f"{'met' if meets else 'NOT met'}")  # fmt: skip
        ok &= meets
    return ok


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Measure:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> Measure:
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu

    @property
    def cores(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


def line(name: str, objects: int, m: Measure, extra: str = "") -> str:
    rate = f"{objects / m.wall:>10,.0f} obj/s" if objects else " " * 16
    return f"  {name:<38} {m.wall:7.2f} s {rate}  cpu {m.cpu:6.2f} s ({m.cores:.2f} cores) {extra}"


def prebuilt_items(rows: int) -> list[TrackItem]:
    """The objects the first sync sends, built in Python beforehand."""
    return [
        TrackItem(
            "attributes",
            {
                "external_id": f"C{i:08d}",
                "email": f"customer{i}@example.com",
                "first_name": f"First{i % 997}",
                "loyalty_points": i % 5000,
                "is_vip": i % 7 == 0,
                "signed_up_at": "2020-01-01T00:00:00.000Z",
            },
            i,
        )
        for i in range(rows)
    ]


async def client_alone(url: str, items: list[TrackItem], concurrency: int) -> int:
    client = BrazeClient(url, KEY, max_concurrency=concurrency, governor=RateGovernor())
    async with client:
        summary = await client.track(items)
    return summary.accepted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--engine", choices=("duckdb", "postgres"), default="duckdb")
    parser.add_argument(
        "--statements", action="store_true", help="PostgreSQL: print the slowest statements"
    )
    parser.add_argument(
        "--statements-shown", type=int, default=8, help="how many slowest statements to print"
    )
    parser.add_argument(
        "--database", default=PG_DATABASE, help="PostgreSQL: the bench database (dropped first)"
    )
    parser.add_argument(
        "--no-floors", action="store_true", help="PostgreSQL: only the two syncs (A/B runs)"
    )
    args = parser.parse_args(argv)
    print("$ python -m bench.sync_e2e " + " ".join(argv if argv is not None else sys.argv[1:]))
    work = Path(tempfile.mkdtemp(prefix="hw-e2e-"))
    (work / "data").mkdir()
    ok = True
    try:
        write_csv(work / "data/customers.csv", args.rows)
        size = (work / "data/customers.csv").stat().st_size
        print(f"{args.rows:,} rows, CSV {size / 1e6:.0f} MB; sink answering after "
              f"{args.delay * 1000:.0f} ms, {args.concurrency} requests in flight")  # fmt: skip
        with sink_process(args.delay) as url:
            if args.engine == "postgres":
                return 0 if run_postgres(args, work, url) else 1
            (work / "headwater.yml").write_text(
                textwrap.dedent(PROJECT).format(url=url, key=KEY, concurrency=args.concurrency)
            )
            project = load_project(work)
            print("DuckDB model from a CSV")
            with Measure() as m:
                model = materialize_model(project, "customers")
            print(line("floor: stage the CSV into the model", 0, m, f"({model.row_count:,} rows)"))
            if args.rows == 1_000_000:  # the staging target is for 1M rows
                ok &= m.wall < TARGET_STAGE_SECONDS
                print(f"  target staging < {TARGET_STAGE_SECONDS:.0f} s: "
                      f"{'met' if m.wall < TARGET_STAGE_SECONDS else 'NOT met'}")  # fmt: skip
            assert model.engine is not None
            print_floors(model, url, args)
            for label, bump in (("first sync (every row new)", False),
                                ("second sync (1% changed)", True)):  # fmt: skip
                if bump:
                    write_csv(work / "data/customers.csv", args.rows, bump=True)
                with Measure() as m:
                    report = run_sync(load_project(work), "customers")
                extra = (
                    f"{report.requests:,} requests, {report.data_points:,} data points, "
                    f"{report.status}"
                )
                print(line(f"sync: {label}", report.sent, m, extra))
                if not bump and args.rows >= TEN_MILLION:
                    meets = m.wall < TARGET_10M_FIRST_SYNC_SECONDS
                    print(f"  target 10M first sync < {TARGET_10M_FIRST_SYNC_SECONDS:.0f} s: "
                          f"{'met' if meets else 'NOT met'}")  # fmt: skip
                    ok &= meets
                elif not bump:
                    rate = report.sent / m.wall
                    meets = rate >= TARGET_OBJECTS_PER_SECOND and m.cores <= TARGET_CORES
                    print(f"  target >= {TARGET_OBJECTS_PER_SECOND:,} obj/s on <= "
                          f"{TARGET_CORES} cores: {'met' if meets else 'NOT met'}")  # fmt: skip
                    ok &= meets
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
