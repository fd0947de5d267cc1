"""What a run keeps so the next one can be incremental, beside the outputs.

* ``<model>__hw_records`` (rh, rows, fp, gen, cc): per record (``rh``, the hash of its
  source and id) its fingerprint (``rows`` > 1 for an id listed twice, or two ids sharing
  a hash: always resolved again) and the component it was in before ``max_per_person``
  split it (``gen``, ``cc``: the run that numbered it and its number there). A component
  closes over every linking value, so re-resolving whole components is exact.
* ``<model>__hw_keys`` (rh, vh, key, value): every record's cleaned key values (``vh``, the
  hash of key and value, to find them by integer), the index from a changed value to the
  records sharing it.
* ``<model>__hw_meta`` (fingerprint, generation): the configuration the state was built
  with; another one (keys, cleaning, limit rules, sources, columns, the engine and its
  version) means a full run.

Written in the same transaction as the outputs, so state and outputs never disagree.
"""

from __future__ import annotations

import hashlib
import json

import duckdb

from headwater.config import ModelConfig
from headwater.engines import Engine, quote_table
from headwater.identity.dialect import hash_sql, is_pg
from headwater.identity.limits import PRESPLIT
from headwater.identity.normalize import VALUES
from headwater.identity.stage import RECORD_KEY, RECORDS
from headwater.sources.base import quote_literal

FORMAT = 1  # bumped when what is kept changes: an older state means a full run
STATE = ("records", "keys", "meta")
NOT_RESULT = ("merge_in_braze", "memory_limit")  # identity settings; ``schedule`` is the model's


def state_table(model_name: str, part: str) -> str:
    return f"{model_name}__hw_{part}"


def fingerprint(model: ModelConfig, engine: Engine | None = None) -> str:
    """A digest of everything in the model that decides a run's result."""
    dumped = model.model_dump(mode="json", exclude={"description", "schedule"})
    for name in NOT_RESULT:  # how a run goes or what follows it, not what it finds
        dumped.get("identity", {}).pop(name, None)
    # The engine's hash names records and values in the state: another version may hash
    # differently, so it is part of the fingerprint (an upgrade means one full run).
    if engine is not None and is_pg(engine):
        version = {"postgres": engine.fetch_all("SHOW server_version_num")[0][0]}
    else:
        version = {"duckdb": duckdb.__version__}
    described = {"format": FORMAT, **version, "model": dumped}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def last_generation(engine: Engine, model_name: str, model: ModelConfig, outputs) -> int | None:
    """The last run's generation when this run may be incremental: its state and outputs
    are there and were built with this configuration. None: run in full. ``model_name``
    is the tables' prefix (``schema.model`` maybe)."""
    tables = [state_table(model_name, p) for p in STATE] + list(outputs)
    if not all(engine.table_exists(t) for t in tables):
        return None
    rows = engine.fetch_all(
        f"SELECT fingerprint, generation FROM {quote_table(state_table(model_name, 'meta'))}"
    )
    if len(rows) != 1 or rows[0][0] != fingerprint(model, engine):
        return None
    return int(rows[0][1])


def _record_rows(generation: int) -> str:
    return (
        "SELECT r._rh AS rh, COUNT(*) AS rows, MIN(r._fp) AS fp, "
        f"CAST({int(generation)} AS BIGINT) AS gen, MIN(p.lbl) AS cc "
        f"FROM {RECORDS} AS r JOIN {PRESPLIT} AS p ON p._rid = r._rid GROUP BY r._rh"
    )


def _key_rows(dialect: str, only: str | None = None) -> str:
    where = f" AND r._rid IN (SELECT _rid FROM {only})" if only else ""
    return (
        f"SELECT r._rh AS rh, {hash_sql(dialect, 'v.key', 'v.value')} AS vh, v.key, v.value "
        f"FROM {VALUES} AS v JOIN {RECORDS} AS r ON r._rid = v._rid "
        f"WHERE v.key <> '{RECORD_KEY}'{where}"
    )


def _meta_rows(engine: Engine, model: ModelConfig, generation: int) -> str:
    return (
        f"SELECT CAST({quote_literal(fingerprint(model, engine))} AS VARCHAR) AS fingerprint, "
        f"CAST({int(generation)} AS BIGINT) AS generation"
    )


def full_state(engine: Engine, model_name: str, model: ModelConfig, generation: int) -> dict:
    """The state tables of a full run: table name -> its SELECT (every record in ``RECORDS``)."""
    return {
        state_table(model_name, "records"): _record_rows(generation),
        state_table(model_name, "keys"): _key_rows(engine.dialect),
        state_table(model_name, "meta"): _meta_rows(engine, model, generation),
    }


def write_full(engine: Engine, model_name: str, model: ModelConfig, generation: int):
    """Replace the state with this run's, in the caller's transaction (DuckDB; PostgreSQL
    writes ``full_state`` as drafts beside the outputs and swaps them in with them)."""
    for table, select in full_state(engine, model_name, model, generation).items():
        engine.execute(f"CREATE OR REPLACE TABLE {quote_table(table)} AS {select}")


def write_patch(
    engine: Engine,
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
    records = quote_table(state_table(model_name, "records"))
    keys = quote_table(state_table(model_name, "keys"))
    meta = quote_table(state_table(model_name, "meta"))
    engine.execute(f"DELETE FROM {records} WHERE rh IN (SELECT rh FROM {touched})")
    engine.execute(f"INSERT INTO {records} {_record_rows(generation)}")
    engine.execute(f"DELETE FROM {keys} WHERE rh IN (SELECT rh FROM {delta})")
    engine.execute(f"INSERT INTO {keys} {_key_rows(engine.dialect, changed_rids)}")
    engine.execute(f"DELETE FROM {meta}")
    engine.execute(f"INSERT INTO {meta} {_meta_rows(engine, model, generation)}")
