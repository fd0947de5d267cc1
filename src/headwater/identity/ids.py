"""Person ids that survive runs: ``p_<n>``, never reused.

A component's id comes from the persons its records belonged to last run (the
``<model>_links`` table):

* none: a new id, counting on from the largest ever given (kept in ``<model>__hw_ids``);
* one: that id (a record joining a person keeps the person's id);
* several: a merge. The oldest person (first seen first, then the smaller number) survives;
  the others are written to ``<model>_merges`` (survivor, merged, merged_at, run_id).

When a person's records end up in several components (a split: a value was refused, a
record removed), the component holding most of them keeps the id; the rest get new ones.

Output: ``__hw_id_person`` (lbl, person_id, first_seen_at) and ``__hw_id_merged``.
"""

from __future__ import annotations

from datetime import datetime

from headwater.engines import Engine, quote_table
from headwater.identity.dialect import count, empty_temp_table, temp_table, timestamp_sql
from headwater.identity.limits import LABELS
from headwater.identity.stage import RECORDS

PERSON = "__hw_id_person"
MERGED = "__hw_id_merged"


def assign_person_ids(
    engine: Engine, links: str, persons: str, counter: str, now: datetime
) -> tuple[int, int]:
    """Fill ``PERSON`` and ``MERGED``; return (new persons, merges). Table names may be
    ``schema.table``."""
    links_q, persons_q, counter_q = quote_table(links), quote_table(persons), quote_table(counter)
    engine.execute(f"CREATE TABLE IF NOT EXISTS {counter_q} (last_number BIGINT)")
    last = engine.fetch_all(f"SELECT MAX(last_number) FROM {counter_q}")[0][0] or 0
    temp_table(engine, "__hw_id_lbls", "SELECT DISTINCT lbl FROM " + LABELS)
    if engine.table_exists(links) and engine.table_exists(persons):
        temp_table(
            engine,
            "__hw_id_claims",
            "SELECT c.lbl, o.person_id, "
            "COUNT(*) AS n, MIN(p.first_seen_at) AS first_seen_at FROM "
            f"(SELECT l.lbl, r._source, r._record_id FROM {LABELS} AS l JOIN {RECORDS} AS r "
            f"ON r._rid = l._rid) AS c JOIN {links_q} AS o ON o.source = c._source "
            f"AND o.record_id = c._record_id LEFT JOIN {persons_q} AS p ON p.person_id = o.person_id "
            "GROUP BY c.lbl, o.person_id",
        )
    else:
        empty_temp_table(
            engine,
            "__hw_id_claims",
            "lbl BIGINT, person_id VARCHAR, n BIGINT, first_seen_at TIMESTAMPTZ",
        )
    # Each old person goes to the component holding most of its records ...
    temp_table(
        engine,
        "__hw_id_kept",
        "SELECT lbl, person_id, first_seen_at, "
        "ROW_NUMBER() OVER (PARTITION BY lbl ORDER BY first_seen_at NULLS LAST, "
        "CAST(substr(person_id, 3) AS BIGINT), person_id) AS age FROM (SELECT *, ROW_NUMBER() "
        "OVER (PARTITION BY person_id ORDER BY n DESC, lbl) AS best FROM __hw_id_claims) AS c "
        "WHERE best = 1",
    )
    # ... and in each component the oldest person survives; the others merge into it.
    temp_table(
        engine,
        MERGED,
        "SELECT s.person_id AS survivor, m.person_id AS merged FROM __hw_id_kept AS s "
        "JOIN __hw_id_kept AS m ON m.lbl = s.lbl AND m.age > 1 WHERE s.age = 1",
    )
    temp_table(
        engine,
        PERSON,
        f"SELECT l.lbl, COALESCE(k.person_id, "
        f"'p_' || CAST({int(last)} + ROW_NUMBER() OVER (PARTITION BY k.person_id IS NULL "
        "ORDER BY l.lbl) AS VARCHAR)) AS person_id, COALESCE(k.first_seen_at, "
        f"{timestamp_sql(now)}) AS first_seen_at, k.person_id IS NULL AS is_new "
        "FROM __hw_id_lbls AS l LEFT JOIN (SELECT * FROM __hw_id_kept WHERE age = 1) AS k "
        "ON k.lbl = l.lbl",
    )
    new = count(engine, PERSON, "WHERE is_new")
    merges = count(engine, MERGED)
    engine.execute(f"DELETE FROM {counter_q}")
    engine.execute(f"INSERT INTO {counter_q} VALUES ({int(last) + int(new)})")
    for table in ("__hw_id_lbls", "__hw_id_claims", "__hw_id_kept"):
        engine.execute(f"DROP TABLE IF EXISTS {table}")
    return int(new), int(merges)
