"""Identity resolution end to end: 3 sources, overlapping emails, phones and ids, truth known.

Persons get an email, a US phone and (70 %) a CRM record; their records are spread over
``crm`` (email, phone, crm id), ``shop`` orders (email in any case and spacing, sometimes
the phone) and ``app`` users (phone in any format, the email when nothing else would link
them). Junk the limit rules must catch: ``test@example.com`` on 1 order in 500, a
call-centre phone on 1 app record in 700, and pairs of CRM persons sharing one email (the
email must not merge two CRM ids). Bad values (``n/a``, ``call me``) must be rejected. Every
record also carries another key of its person, so the truth is exactly what the
deterministic keys allow: precision and recall must both be 1.0.

Times a full run (normalise, resolve, golden record) in a fresh process, then a second,
incremental run after 1 % of the records changed (only the changed records and the
components they reach are resolved again), each with the process's peak RSS, and scores
persons pairwise against the truth (record pairs put together).

    python -m bench.identity --records 1000000
    python -m bench.identity --records 10000000
    python -m bench.identity --quick                # 20,000 records, for the tests
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import duckdb

PROJECT = """
sources:
  crm_contacts: {type: parquet, path: data/crm.parquet}
  shop_orders: {type: parquet, path: data/shop.parquet}
  app_users: {type: parquet, path: data/app.parquet}
models:
  people:
    identity:
      keys:
        crm_id: {type: string, max_per_person: 1}
        email: {type: email}
        phone: {type: phone, default_region: US}
      max_records_per_value: 100
      memory_limit: 3GB
      sources:
        crm: {sql: select * from crm_contacts, record_id: id, keys: {crm_id: id, email: email, phone: phone}, updated_at: updated_at, priority: 1}
        shop: {sql: select * from shop_orders, record_id: order_id, keys: {email: email, phone: phone}, updated_at: ordered_at, priority: 2}
        app: {sql: select * from app_users, record_id: user_id, keys: {phone: phone, email: email}, updated_at: seen_at, priority: 3}
    columns:
      first_name: {type: string, survivorship: source_priority}
      city: {type: string, survivorship: most_frequent}
      email: {type: string, survivorship: most_recent}
      phone: {type: string, survivorship: most_recent}
"""

# h(x, salt): a deterministic pseudo-random integer, so the data is the same every time.
MACROS = """
CREATE MACRO h(x, salt) AS hash(x * 1000003 + salt) % 1000000;
CREATE MACRO email_of(p) AS 'user' || p || '@' || 'd' || (p % 97) || '.example.com';
CREATE MACRO phone_of(p) AS '+1' || [201, 212, 213, 305, 312, 415, 617, 646, 702, 713][(p % 10) + 1]
    || CAST(2000000 + (p * 7919) % 8000000 AS VARCHAR);
CREATE MACRO fmt_phone(e, k) AS CASE k % 4 WHEN 0 THEN e
    WHEN 1 THEN '+1 ' || substr(e, 3, 3) || ' ' || substr(e, 6, 3) || ' ' || substr(e, 9)
    WHEN 2 THEN '(' || substr(e, 3, 3) || ') ' || substr(e, 6, 3) || '-' || substr(e, 9)
    ELSE substr(e, 3, 3) || '.' || substr(e, 6, 3) || '.' || substr(e, 9) END;
CREATE MACRO fmt_email(e, k) AS CASE k % 3 WHEN 0 THEN e WHEN 1 THEN upper(e) ELSE '  ' || e || ' ' END;
CREATE MACRO has_crm(p) AS h(p, 1) % 10 < 7 OR p % 5000 IN (0, 1);
CREATE MACRO family(p) AS p % 5000 = 1;  -- shares the email of person p - 1 (both in the CRM)
CREATE MACRO mail(p) AS CASE WHEN family(p) THEN email_of(p - 1) ELSE email_of(p) END;
-- An app record with a junk phone is linked by its email alone: not for a family's (refused,
-- two CRM ids) nor when the CRM email is n/a (nothing may carry it): no key would link it.
CREATE MACRO junk_ok(p) AS NOT family(p) AND NOT family(p + 1) AND h(p, 9) % 997 <> 0;
"""


def generate(directory: Path, records: int, seed: int = 0) -> dict[str, int]:
    """Write the three sources (parquet) and ``truth.parquet`` (source, record_id, pid)."""
    persons = max(records * 10 // 32, 10)
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    for statement in MACROS.split(";"):
        if statement.strip():
            con.execute(statement)
    con.execute(f"CREATE TABLE p AS SELECT range AS p FROM range({persons})")
    con.execute("""CREATE TABLE crm AS SELECT 'C' || p AS id,
        CASE WHEN h(p, 9) % 997 = 0 THEN 'n/a' ELSE fmt_email(mail(p), h(p, 3)) END AS email,
        fmt_phone(phone_of(p), h(p, 4)) AS phone, 'First' || (p % 1000) AS first_name,
        TIMESTAMP '2024-01-01' + INTERVAL (h(p, 5)) MINUTE AS updated_at, p AS pid
        FROM p WHERE has_crm(p)""")
    con.execute("""CREATE TABLE shop AS SELECT 'O' || p || '-' || k AS order_id,
        CASE WHEN h(p * 4 + k, 6) % 500 = 0 AND has_crm(p) THEN 'test@example.com'
             ELSE fmt_email(mail(p), h(p, 7) + k) END AS email,
        CASE WHEN h(p * 4 + k, 6) % 500 = 0 OR family(p) OR family(p + 1) OR h(p, 9) % 997 = 0
             THEN fmt_phone(phone_of(p), k) END AS phone,
        'Shopper' || (p % 100) AS first_name, 'City' || ((p + k % 2) % 300) AS city,
        TIMESTAMP '2024-02-01' + INTERVAL (h(p, 8) + k) MINUTE AS ordered_at, p AS pid
        FROM p, range(4) AS r(k) WHERE k < h(p, 2) % 4""")
    con.execute("""CREATE TABLE app AS SELECT 'A' || p || '-' || k AS user_id,
        CASE WHEN h(p * 3 + k, 10) % 700 = 0 AND junk_ok(p) THEN '+1 800 555 0199'
             WHEN h(p * 3 + k, 11) % 991 = 0 AND junk_ok(p) THEN 'call me'
             ELSE fmt_phone(phone_of(p), h(p, 12) + k) END AS phone,
        CASE WHEN NOT has_crm(p) OR h(p * 3 + k, 10) % 700 = 0 OR h(p * 3 + k, 11) % 991 = 0
             OR family(p) OR family(p + 1) OR h(p, 13) % 2 = 0
             THEN fmt_email(mail(p), k) END AS email,
        'City' || (p % 300) AS city,
        TIMESTAMP '2024-03-01' + INTERVAL (h(p, 14) + k) MINUTE AS seen_at, p AS pid
        FROM p, range(3) AS r(k) WHERE k < h(p, 15) % 3""")
    # A person with no record anywhere is dropped from the truth by construction.
    counts = {}
    for name in ("crm", "shop", "app"):
        con.execute(f"COPY {name} TO '{data / (name + '.parquet')}' (FORMAT parquet)")
        counts[name] = con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
    key = {"crm": "id", "shop": "order_id", "app": "user_id"}
    con.execute(
        f"COPY ({' UNION ALL '.join(f'SELECT {n!r} AS source, {k} AS record_id, pid FROM {n}' for n, k in key.items())}) "
        f"TO '{directory / 'truth.parquet'}' (FORMAT parquet)"
    )
    (directory / "headwater.yml").write_text(PROJECT)
    con.close()
    return counts


def change_one_percent(directory: Path) -> int:
    """Change 1 % of the records: new orders for existing persons (half of them) and
    existing app records whose phone is rewritten in another format (the other half)."""
    data = directory / "data"
    con = duckdb.connect()
    shop = data / "shop.parquet"
    app = data / "app.parquet"
    total = sum(
        con.execute(f"SELECT count(*) FROM '{data / n}.parquet'").fetchall()[0][0]
        for n in ("crm", "shop", "app")
    )
    changes = max(total // 100, 2)
    con.execute(
        f"CREATE TABLE shop AS SELECT * FROM '{shop}' UNION ALL SELECT 'N' || order_id, email, "
        f"phone, first_name, 'Moved' AS city, ordered_at + INTERVAL 30 DAY, pid FROM '{shop}' "
        f"USING SAMPLE {changes // 2} ROWS (reservoir, 7)"
    )
    con.execute(
        f"CREATE TABLE app AS SELECT * REPLACE (CASE WHEN hash(user_id) % 100 = 0 AND "
        "phone LIKE '(%' THEN replace(replace(replace(phone, '(', ''), ') ', '-'), '-', ' ') "
        f"ELSE phone END AS phone) FROM '{app}'"
    )
    con.execute(f"COPY shop TO '{shop}' (FORMAT parquet)")
    con.execute(f"COPY app TO '{app}' (FORMAT parquet)")
    con.execute(
        f"COPY (SELECT * FROM '{directory / 'truth.parquet'}' UNION ALL SELECT 'shop', "
        f"order_id, pid FROM shop WHERE order_id LIKE 'N%') TO '{directory / 'truth2.parquet'}' "
        "(FORMAT parquet)"
    )
    con.close()
    (directory / "truth2.parquet").replace(directory / "truth.parquet")
    return changes


def score(directory: Path) -> dict[str, float]:
    """Pairwise precision and recall of the resolved persons against the truth."""
    con = duckdb.connect(str(directory / ".headwater" / "warehouse.duckdb"), read_only=True)
    con.execute(
        f"CREATE TEMP TABLE j AS SELECT t.pid, l.person_id FROM '{directory / 'truth.parquet'}' "
        "AS t JOIN people_links AS l ON l.source = t.source AND l.record_id = t.record_id"
    )
    pairs = "SUM(n * (n - 1) / 2)"
    both = con.execute(
        f"SELECT {pairs} FROM (SELECT count(*) n FROM j GROUP BY pid, person_id)"
    ).fetchall()[0][0]
    truth = con.execute(f"SELECT {pairs} FROM (SELECT count(*) n FROM j GROUP BY pid)").fetchall()[
        0
    ][0]
    found = con.execute(
        f"SELECT {pairs} FROM (SELECT count(*) n FROM j GROUP BY person_id)"
    ).fetchall()[0][0]
    persons_true = con.execute("SELECT count(DISTINCT pid) FROM j").fetchall()[0][0]
    # True persons found in pieces, and found persons mixing true ones: a few of each.
    split = con.execute(
        "SELECT pid FROM j GROUP BY pid HAVING count(DISTINCT person_id) > 1 ORDER BY pid"
    ).fetchall()
    mixed = con.execute(
        "SELECT person_id FROM j GROUP BY person_id HAVING count(DISTINCT pid) > 1 "
        "ORDER BY person_id"
    ).fetchall()
    con.close()
    return {
        "precision": float(both) / float(found) if found else 1.0,
        "recall": float(both) / float(truth) if truth else 1.0,
        "true_persons": persons_true,
        "split": [row[0] for row in split[:10]],
        "split_count": len(split),
        "mixed": [row[0] for row in mixed[:10]],
        "mixed_count": len(mixed),
    }


class _Steps:
    """Wall, CPU and peak RSS of each step the resolver names (its ``progress``): a thread
    samples the resident set, since the kernel's high-water mark never comes down."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self._peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _sample(self) -> None:
        while not self._done.wait(0.05):
            self._peak = max(self._peak, self._rss())

    def __call__(self, name: str) -> None:
        now, cpu, rss = time.perf_counter(), time.process_time(), self._rss()
        if self.steps:
            last = self.steps[-1]
            last["seconds"] = now - last.pop("_t")
            last["cpu_seconds"] = cpu - last.pop("_c")
            last["peak_rss"] = max(self._peak, rss)
        self._peak = rss
        if name:
            self.steps.append({"step": name, "_t": now, "_c": cpu})

    def close(self) -> list[dict]:
        self("")
        self._done.set()
        return self.steps


def _resolve_here(directory: Path) -> None:
    """Child process: one resolution, then its figures as JSON on stdout."""
    from headwater.config import load_project
    from headwater.identity import resolve

    project = load_project(directory)
    steps = _Steps()
    started, cpu_started = time.perf_counter(), time.process_time()
    report = resolve(project, "people", progress=steps)
    seconds = time.perf_counter() - started
    out_steps = steps.close()
    cpu = time.process_time() - cpu_started  # every thread of this process, imports left out
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss * 1024
    out = report.to_dict()
    out.pop("errors")
    figures = {"wall_seconds": seconds, "cpu_seconds": cpu, "peak_rss": peak, "steps": out_steps}
    print(json.dumps(out | figures))


def run_child(directory: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "bench.identity", "--resolve-in", str(directory)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="20,000 records")
    parser.add_argument("--dir", type=Path, help="where to write (default: a temp dir)")
    parser.add_argument("--resolve-in", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.resolve_in:
        _resolve_here(args.resolve_in)
        return {}
    records = 20_000 if args.quick else args.records
    with tempfile.TemporaryDirectory(prefix="hw-identity-") as tmp:
        directory = args.dir or Path(tmp)
        started = time.perf_counter()
        counts = generate(directory, records)
        print(
            f"generated {sum(counts.values()):,} records {counts} in {time.perf_counter() - started:.1f}s"
        )
        full = run_child(directory)
        full |= score(directory)
        _print("full run", full)
        changed = change_one_percent(directory)
        again = run_child(directory)
        again |= score(directory)
        _print(f"after {changed:,} records changed", again)
        ratio = again["wall_seconds"] / full["wall_seconds"]
        cpu = again["cpu_seconds"] / full["cpu_seconds"]
        print(f"incremental / full: {ratio:.2f} wall, {cpu:.2f} CPU")
        return {"full": full, "incremental": again, "changed": changed}


def _print(title: str, r: dict) -> None:
    print(
        f"{title}: {r['records']:,} records -> {r['persons']:,} persons "
        f"(truth {r['true_persons']:,}) in {r['wall_seconds']:.1f}s ({r['cpu_seconds']:.1f} CPU-s), peak RSS "
        f"{r['peak_rss'] / 2**30:.2f} GiB; precision {r['precision']:.4f}, recall "
        f"{r['recall']:.4f} ({r['split_count']} true persons split {r['split']}, "
        f"{r['mixed_count']} found persons mixing true ones {r['mixed']}); refused {r['refused']:,}, rejected {r['rejected']:,}, "
        f"merges {r['merges']:,}, new persons {r['new_persons']:,}, keys cleaned "
        f"{r['cleaned']:,}, {r['rounds']} rounds; {r['mode']} run ({r['changed']:,} records "
        f"changed, {r['touched']:,} resolved again); status {r['status']}"
        + (f" ({r['error']})" if r.get("error") else "")
    )
    for step in r.get("steps", []):
        print(
            f"  {step['step']}: {step['seconds']:.1f}s ({step['cpu_seconds']:.1f} CPU-s), "
            f"peak RSS {step['peak_rss'] / 2**30:.2f} GiB"
        )


if __name__ == "__main__":
    main()
