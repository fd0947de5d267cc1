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
from headwater.engines import Engine, quote_table
from headwater.identity.dialect import count, hash_sql, temp_table
from headwater.identity.limits import limit_sql
from headwater.identity.memory import state_table
from headwater.identity.normalize import VALUES
from headwater.identity.stage import RECORDS

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


def find_changes(engine: Engine, model_name: str) -> int:
    """Fill ``DELTA`` and ``CHANGED``; narrow ``RECORDS`` to the changed rows (``ALL``
    keeps every one). Return how many records changed. ``model_name``: the tables' prefix."""
    state = quote_table(state_table(model_name, "records"))
    engine.execute(f"DROP TABLE IF EXISTS {ALL}")
    engine.execute(f"ALTER TABLE {RECORDS} RENAME TO {ALL}")
    temp_table(
        engine,
        DELTA,
        "SELECT COALESCE(c.rh, s.rh) AS rh FROM "
        f"(SELECT _rh AS rh, COUNT(*) AS rows, MIN(_fp) AS fp FROM {ALL} GROUP BY _rh) AS c "
        f"FULL JOIN {state} AS s ON s.rh = c.rh WHERE c.rows IS DISTINCT FROM 1 "
        "OR s.rows IS DISTINCT FROM 1 OR c.fp IS DISTINCT FROM s.fp",
    )
    temp_table(engine, RECORDS, f"SELECT * FROM {ALL} WHERE _rh IN (SELECT rh FROM {DELTA})")
    temp_table(engine, CHANGED, f"SELECT _rid FROM {RECORDS}")
    return count(engine, DELTA)


def _holding(keys: str, values: str) -> str:
    """The index rows holding one of ``values`` (vh, key, value): found by the integer
    ``vh``, then checked on the text (two values may share a hash)."""
    return (
        f"SELECT k.* FROM (SELECT * FROM {keys} WHERE vh IN (SELECT vh FROM {values})) AS k "
        f"JOIN (SELECT DISTINCT key, value FROM {values}) AS w "
        "ON w.key = k.key AND w.value = k.value"
    )


def narrow_to_touched(engine: Engine, model_name: str, identity: IdentityConfig) -> int:
    """Make ``RECORDS``/``VALUES`` the subgraph to resolve again and fill ``COUNTS``,
    ``TOUCHED`` and ``WANTED``. ``VALUES`` holds the changed records' cleaned values on
    entry. Return how many records are resolved again."""
    keys = quote_table(state_table(model_name, "keys"))
    state = quote_table(state_table(model_name, "records"))
    vh = hash_sql(engine.dialect, "v.key", "v.value")
    # The changed records' values now, and the values they held (the index has them).
    temp_table(
        engine,
        "__hw_id_dvals",
        f"SELECT r._rh AS rh, {vh} AS vh, v.key, v.value FROM {VALUES} AS v "
        f"JOIN {RECORDS} AS r ON r._rid = v._rid",
    )
    temp_table(engine, "__hw_id_dold", f"SELECT * FROM {keys} WHERE rh IN (SELECT rh FROM {DELTA})")
    temp_table(
        engine,
        "__hw_id_tv",
        "SELECT DISTINCT vh, key, value FROM (SELECT vh, key, value FROM __hw_id_dvals "
        "UNION ALL SELECT vh, key, value FROM __hw_id_dold) AS u",
    )
    # Every record that held one of those values last run, and each value's count
    # before and after.
    temp_table(engine, "__hw_id_tvh", _holding(keys, "__hw_id_tv"))
    temp_table(
        engine,
        "__hw_id_tvc",
        "SELECT t.key, t.value, "
        "COALESCE(o.n, 0) AS n_old, COALESCE(o.n, 0) - COALESCE(x.n, 0) + COALESCE(y.n, 0) "
        f"AS n_new, {limit_sql(identity).replace('CASE key', 'CASE t.key')} AS lim "
        "FROM __hw_id_tv AS t "
        "LEFT JOIN (SELECT key, value, COUNT(*) AS n FROM __hw_id_tvh GROUP BY key, value) AS o "
        "ON o.key = t.key AND o.value = t.value "
        "LEFT JOIN (SELECT key, value, COUNT(*) AS n FROM __hw_id_dold GROUP BY key, value) AS x "
        "ON x.key = t.key AND x.value = t.value "
        "LEFT JOIN (SELECT key, value, COUNT(*) AS n FROM __hw_id_dvals GROUP BY key, value) "
        "AS y ON y.key = t.key AND y.value = t.value",
    )
    # A value refused before and after links nobody: its holders stay as they are.
    temp_table(
        engine,
        "__hw_id_holders",
        "SELECT h.rh FROM __hw_id_tvh AS h "
        "JOIN __hw_id_tvc AS c ON c.key = h.key AND c.value = h.value "
        "WHERE NOT (c.lim IS NOT NULL AND c.n_old > c.lim AND c.n_new > c.lim) "
        f"UNION SELECT rh FROM {DELTA}",
    )
    temp_table(
        engine,
        TOUCHED,
        f"SELECT s.rh FROM {state} AS s "
        f"JOIN (SELECT DISTINCT gen, cc FROM {state} WHERE rh IN (SELECT rh FROM __hw_id_holders)) "
        f"AS c ON c.gen = s.gen AND c.cc = s.cc UNION SELECT rh FROM {DELTA}",
    )
    # The subgraph: those records as they are now, the changed ones' values freshly
    # cleaned and the others' from the index.
    temp_table(
        engine, "__hw_id_sub", f"SELECT * FROM {ALL} WHERE _rh IN (SELECT rh FROM {TOUCHED})"
    )
    engine.execute(f"DROP TABLE {RECORDS}")
    engine.execute(f"ALTER TABLE __hw_id_sub RENAME TO {RECORDS}")
    engine.execute(
        f"INSERT INTO {VALUES} SELECT r._rid, k.key, k.value FROM (SELECT * FROM {keys} "
        f"WHERE rh IN (SELECT rh FROM {TOUCHED}) AND rh NOT IN (SELECT rh FROM {DELTA})) AS k "
        f"JOIN {RECORDS} AS r ON r._rh = k.rh"
    )
    # How many records hold each value resolved again or changed, across all records.
    temp_table(
        engine,
        WANTED,
        f"SELECT {hash_sql(engine.dialect, 'key', 'value')} AS vh, key, value FROM "
        f"(SELECT key, value FROM {VALUES} UNION SELECT key, value FROM __hw_id_tv) AS u",
    )
    temp_table(
        engine,
        COUNTS,
        "SELECT key, value, COUNT(*) AS n FROM "
        f"(SELECT key, value FROM ({_holding(keys, WANTED)}) AS k "
        f"WHERE k.rh NOT IN (SELECT rh FROM {DELTA}) "
        "UNION ALL SELECT key, value FROM __hw_id_dvals) AS u GROUP BY key, value",
    )
    for table in ("__hw_id_dold", "__hw_id_tvh", "__hw_id_tvc", "__hw_id_holders"):
        engine.execute(f"DROP TABLE IF EXISTS {table}")
    return count(engine, RECORDS)
