"""An incremental run: resolve again only the part of the graph a change can reach.

1. ``find_changes``: every record's fingerprint against the last run's gives the changed
   ones (new, edited, removed; an id listed twice always counts as changed). ``RECORDS``
   is narrowed to their rows, so only their key values are cleaned.
2. ``narrow_to_touched`` (after cleaning): the values a change adds or takes away, and
   which of them can link someone (a value over ``max_records_per_value`` before and after
   links nobody, so its other holders are left alone). Every record of the last run's
   components holding such a value, or holding a changed record, is resolved again, with
   the changed records: those components close over every linking value, so nothing
   outside them can join. ``RECORDS`` and ``VALUES`` become that subgraph, and
   ``COUNTS`` says how many records hold each of its values across all records, so the
   limit rules decide as a full run would.

Records are named by ``rh``, the hash of their source and id (two ids sharing one count
as listed twice: always resolved again). Tables: ``ALL`` (every record now), ``DELTA``
(rh), ``CHANGED`` (_rid), ``TOUCHED`` (rh), ``WANTED`` (vh, key, value: the values
resolved again).
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.config import IdentityConfig
from headwater.engines import DuckDBEngine
from headwater.identity.limits import limit_sql
from headwater.identity.memory import state_table
from headwater.identity.normalize import VALUES
from headwater.identity.stage import RECORDS
from headwater.sources.base import quote_ident

ALL = "__hw_id_everyone"
DELTA = "__hw_id_delta"
CHANGED = "__hw_id_changed"
TOUCHED = "__hw_id_touched"
WANTED = "__hw_id_wanted"
COUNTS = "__hw_id_gcounts"
TEMP = (ALL, DELTA, CHANGED, TOUCHED, WANTED, COUNTS, "__hw_id_dvals", "__hw_id_tv")


@dataclass
class Delta:
    changed: int = 0  # records new, edited or removed since the last run
    touched: int = 0  # records resolved again (the changed ones and their components')


def find_changes(engine: DuckDBEngine, model_name: str) -> int:
    """Fill ``DELTA`` and ``CHANGED``; narrow ``RECORDS`` to the changed rows (``ALL``
    keeps every one). Return how many records changed."""
    con = engine.conn
    state = quote_ident(state_table(model_name, "records"))
    con.execute(f"DROP TABLE IF EXISTS {ALL}")
    con.execute(f"ALTER TABLE {RECORDS} RENAME TO {ALL}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {DELTA} AS SELECT COALESCE(c.rh, s.rh) AS rh FROM "
        f"(SELECT _rh AS rh, COUNT(*) AS rows, MIN(_fp) AS fp FROM {ALL} GROUP BY _rh) AS c "
        f"FULL JOIN {state} AS s ON s.rh = c.rh WHERE c.rows IS DISTINCT FROM 1 "
        "OR s.rows IS DISTINCT FROM 1 OR c.fp IS DISTINCT FROM s.fp"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {RECORDS} AS SELECT * FROM {ALL} "
        f"WHERE _rh IN (SELECT rh FROM {DELTA})"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {CHANGED} AS SELECT _rid FROM {RECORDS}")
    return int(con.execute(f"SELECT COUNT(*) FROM {DELTA}").fetchall()[0][0])


def _holding(keys: str, values: str) -> str:
    """The index rows holding one of ``values`` (vh, key, value): found by the integer
    ``vh``, then checked on the text (two values may share a hash)."""
    return (
        f"SELECT k.* FROM (SELECT * FROM {keys} WHERE vh IN (SELECT vh FROM {values})) AS k "
        f"JOIN (SELECT DISTINCT key, value FROM {values}) AS w "
        "ON w.key = k.key AND w.value = k.value"
    )


def narrow_to_touched(engine: DuckDBEngine, model_name: str, identity: IdentityConfig) -> int:
    """Make ``RECORDS``/``VALUES`` the subgraph to resolve again and fill ``COUNTS``,
    ``TOUCHED`` and ``WANTED``. ``VALUES`` holds the changed records' cleaned values on
    entry. Return how many records are resolved again."""
    con = engine.conn
    keys = quote_ident(state_table(model_name, "keys"))
    state = quote_ident(state_table(model_name, "records"))
    # The changed records' values now, and the values they held (the index has them).
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_dvals AS SELECT r._rh AS rh, "
        f"hash(v.key, v.value) AS vh, v.key, v.value FROM {VALUES} AS v JOIN {RECORDS} AS r "
        "ON r._rid = v._rid"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __hw_id_dold AS SELECT * FROM {keys} "
        f"WHERE rh IN (SELECT rh FROM {DELTA})"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_tv AS SELECT DISTINCT vh, key, value FROM "
        "(SELECT vh, key, value FROM __hw_id_dvals UNION ALL "
        "SELECT vh, key, value FROM __hw_id_dold)"
    )
    # Every record that held one of those values last run, and each value's count
    # before and after.
    con.execute(f"CREATE OR REPLACE TEMP TABLE __hw_id_tvh AS {_holding(keys, '__hw_id_tv')}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_tvc AS SELECT t.key, t.value, "
        "COALESCE(o.n, 0) AS n_old, COALESCE(o.n, 0) - COALESCE(x.n, 0) + COALESCE(y.n, 0) "
        f"AS n_new, {limit_sql(identity).replace('CASE key', 'CASE t.key')} AS lim "
        "FROM __hw_id_tv AS t "
        "LEFT JOIN (SELECT key, value, COUNT(*) AS n FROM __hw_id_tvh GROUP BY ALL) AS o "
        "ON o.key = t.key AND o.value = t.value "
        "LEFT JOIN (SELECT key, value, COUNT(*) AS n FROM __hw_id_dold GROUP BY ALL) AS x "
        "ON x.key = t.key AND x.value = t.value "
        "LEFT JOIN (SELECT key, value, COUNT(*) AS n FROM __hw_id_dvals GROUP BY ALL) AS y "
        "ON y.key = t.key AND y.value = t.value"
    )
    # A value refused before and after links nobody: its holders stay as they are.
    con.execute(
        "CREATE OR REPLACE TEMP TABLE __hw_id_holders AS SELECT h.rh FROM __hw_id_tvh AS h "
        "JOIN __hw_id_tvc AS c ON c.key = h.key AND c.value = h.value "
        "WHERE NOT (c.lim IS NOT NULL AND c.n_old > c.lim AND c.n_new > c.lim) "
        f"UNION SELECT rh FROM {DELTA}"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {TOUCHED} AS SELECT s.rh FROM {state} AS s "
        f"JOIN (SELECT DISTINCT gen, cc FROM {state} WHERE rh IN (SELECT rh FROM __hw_id_holders)) "
        f"AS c ON c.gen = s.gen AND c.cc = s.cc UNION SELECT rh FROM {DELTA}"
    )
    # The subgraph: those records as they are now, the changed ones' values freshly
    # cleaned and the others' from the index.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __hw_id_sub AS SELECT * FROM {ALL} "
        f"WHERE _rh IN (SELECT rh FROM {TOUCHED})"
    )
    con.execute(f"DROP TABLE {RECORDS}")
    con.execute(f"ALTER TABLE __hw_id_sub RENAME TO {RECORDS}")
    con.execute(
        f"INSERT INTO {VALUES} SELECT r._rid, k.key, k.value FROM (SELECT * FROM {keys} "
        f"WHERE rh IN (SELECT rh FROM {TOUCHED}) AND rh NOT IN (SELECT rh FROM {DELTA})) AS k "
        f"JOIN {RECORDS} AS r ON r._rh = k.rh"
    )
    # How many records hold each value resolved again or changed, across all records.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {WANTED} AS SELECT hash(key, value) AS vh, key, value "
        f"FROM (SELECT key, value FROM {VALUES} UNION SELECT key, value FROM __hw_id_tv)"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {COUNTS} AS SELECT key, value, COUNT(*) AS n FROM "
        f"(SELECT key, value FROM ({_holding(keys, WANTED)}) AS k "
        f"WHERE k.rh NOT IN (SELECT rh FROM {DELTA}) "
        "UNION ALL SELECT key, value FROM __hw_id_dvals) GROUP BY ALL"
    )
    for table in ("__hw_id_dold", "__hw_id_tvh", "__hw_id_tvc", "__hw_id_holders"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return int(con.execute(f"SELECT COUNT(*) FROM {RECORDS}").fetchall()[0][0])
