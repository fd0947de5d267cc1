"""What a run keeps so the next one can be incremental, in the warehouse beside the outputs.

* ``<model>__hw_records`` (rh, rows, fp, gen, cc): per record (``rh``, the hash of its
  source and id) its fingerprint (``rows`` > 1 for an id listed twice, or two ids sharing
  a hash: always resolved again) and the component it was in before ``max_per_person``
  split it (``gen``, ``cc``: the run that numbered it and its number there). A component
  closes over every linking value, so re-resolving whole components is exact.
* ``<model>__hw_keys`` (rh, vh, key, value): every record's cleaned key values (``vh``, the
  hash of key and value, to find them by integer), the index from a changed value to the
  records sharing it.
* ``<model>__hw_meta`` (fingerprint, generation): the configuration the state was built
  with; another one (keys, cleaning, limit rules, sources, columns, DuckDB's version)
  means a full run.

Written in the same transaction as the outputs, so state and outputs never disagree.
"""

from __future__ import annotations

import hashlib
import json

import duckdb

from headwater.config import ModelConfig
from headwater.engines import DuckDBEngine
from headwater.identity.limits import PRESPLIT
from headwater.identity.normalize import VALUES
from headwater.identity.stage import RECORD_KEY, RECORDS
from headwater.sources.base import quote_ident

FORMAT = 1  # bumped when what is kept changes: an older state means a full run
STATE = ("records", "keys", "meta")
NOT_RESULT = ("merge_in_braze", "memory_limit")  # identity settings; ``schedule`` is the model's


def state_table(model_name: str, part: str) -> str:
    return f"{model_name}__hw_{part}"


def fingerprint(model: ModelConfig) -> str:
    """A digest of everything in the model that decides a run's result."""
    dumped = model.model_dump(mode="json", exclude={"description", "schedule"})
    for name in NOT_RESULT:  # how a run goes or what follows it, not what it finds
        dumped.get("identity", {}).pop(name, None)
    # DuckDB's hash() names records and values in the state: another version may hash
    # differently, so it is part of the fingerprint (an upgrade means one full run).
    described = {"format": FORMAT, "duckdb": duckdb.__version__, "model": dumped}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def last_generation(
    engine: DuckDBEngine, model_name: str, model: ModelConfig, outputs
) -> int | None:
    """The last run's generation when this run may be incremental: its state and outputs
    are there and were built with this configuration. None: run in full."""
    tables = [state_table(model_name, p) for p in STATE] + list(outputs)
    if not all(engine.table_exists(t) for t in tables):
        return None
    rows = engine.conn.execute(
        f"SELECT fingerprint, generation FROM {quote_ident(state_table(model_name, 'meta'))}"
    ).fetchall()
    if len(rows) != 1 or rows[0][0] != fingerprint(model):
        return None
    return int(rows[0][1])


def _record_rows(generation: int) -> str:
    return (
        "SELECT r._rh AS rh, COUNT(*) AS rows, MIN(r._fp) AS fp, "
        f"CAST({int(generation)} AS BIGINT) AS gen, MIN(p.lbl) AS cc "
        f"FROM {RECORDS} AS r JOIN {PRESPLIT} AS p ON p._rid = r._rid GROUP BY r._rh"
    )


def _key_rows(only: str | None = None) -> str:
    where = f" AND r._rid IN (SELECT _rid FROM {only})" if only else ""
    return (
        "SELECT r._rh AS rh, hash(v.key, v.value) AS vh, v.key, v.value "
        f"FROM {VALUES} AS v JOIN {RECORDS} AS r ON r._rid = v._rid "
        f"WHERE v.key <> '{RECORD_KEY}'{where}"
    )


def _write_meta(engine: DuckDBEngine, model_name: str, model: ModelConfig, generation: int):
    meta = quote_ident(state_table(model_name, "meta"))
    engine.conn.execute(
        f"CREATE OR REPLACE TABLE {meta} AS SELECT CAST($f AS VARCHAR) AS fingerprint, "
        "CAST($g AS BIGINT) AS generation",
        {"f": fingerprint(model), "g": generation},
    )


def write_full(engine: DuckDBEngine, model_name: str, model: ModelConfig, generation: int):
    """Replace the state with this run's (every record in ``RECORDS``)."""
    con = engine.conn
    records = quote_ident(state_table(model_name, "records"))
    keys = quote_ident(state_table(model_name, "keys"))
    con.execute(f"CREATE OR REPLACE TABLE {records} AS {_record_rows(generation)}")
    con.execute(f"CREATE OR REPLACE TABLE {keys} AS {_key_rows()}")
    _write_meta(engine, model_name, model, generation)


def write_patch(
    engine: DuckDBEngine,
    model_name: str,
    model: ModelConfig,
    generation: int,
    *,
    touched: str,
    delta: str,
    changed_rids: str,
):
    """Replace the state of the re-resolved records: ``touched`` (rh) are the last run's
    records resolved again (and the changed ones), ``delta`` (rh) the changed ones, whose
    key values were cleaned again (``changed_rids``: their rows now)."""
    con = engine.conn
    records = quote_ident(state_table(model_name, "records"))
    keys = quote_ident(state_table(model_name, "keys"))
    con.execute(f"DELETE FROM {records} WHERE rh IN (SELECT rh FROM {touched})")
    con.execute(f"INSERT INTO {records} {_record_rows(generation)}")
    con.execute(f"DELETE FROM {keys} WHERE rh IN (SELECT rh FROM {delta})")
    con.execute(f"INSERT INTO {keys} {_key_rows(changed_rids)}")
    _write_meta(engine, model_name, model, generation)
