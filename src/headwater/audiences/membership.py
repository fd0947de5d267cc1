"""Audience membership, computed and remembered in the engine that holds the model.

Three tables, next to the model (DuckDB, or the PostgreSQL database a model runs in):

* ``hw_audiences_<model>``: one row per person who was ever in one of the model's
  audiences; per audience three columns: the split last *accepted by Braze* (``__split``,
  NULL when not a member), the person's slot (``__slot``, hashed once on first entry) and
  the identifier value the attribute was sent to (``__ident``, so an exit still reaches a
  person whose row left every source).
* ``hw_audience_delta_<model>``: this run's changes, for the audiences being run: old and
  new split, slot and identifier per audience, only rows where something changed.
* ``hw_audience_history``: every stay in a split (the holdout included), with
  ``entered_at`` and ``left_at`` (NULL while still in): Braze keeps no history, this does.

One state table per model, not per audience, so that all the audiences over a model are
diffed in one pass over it (one join of the model with its state, not one per audience):
that is what keeps 20 audiences over 10M people within seconds. Each audience's columns
only move when Braze accepted what was sent for it (``commit``), so a run killed after
sending resends at most what it had not committed; attributes are idempotent.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import sqlglot

from headwater.audiences.splits import group_sql, slot_sql
from headwater.engines import Engine, quote_ident
from headwater.errors import ConfigError
from headwater.state.audiences import Ranges

KEY = "hw_key"
HISTORY = "hw_audience_history"
BATCH_ROWS = 10_000


def suffix(name: str) -> str:
    folded = re.sub(r"[^a-z0-9_]", "_", name.lower())
    if not folded.strip("_"):
        raise ConfigError(f"name {name!r} cannot name a table")
    return folded


def state_table(model: str) -> str:
    return f"hw_audiences_{suffix(model)}"


def delta_table(model: str) -> str:
    return f"hw_audience_delta_{suffix(model)}"


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Plan:
    """One audience as the membership SQL needs it."""

    name: str
    condition: str  # DuckDB-dialect SQL, parenthesised
    ident_column: str  # the model column holding the Braze identifier
    salt: str
    ranges: Ranges
    primary_key: str = ""  # the model's key; an identifier in that column is not kept

    @property
    def col(self) -> str:
        return suffix(self.name)

    def column(self, part: str) -> str:
        return quote_ident(f"{self.col}__{part}")


def _dialect_condition(engine: Engine, condition: str) -> str:
    if engine.dialect == "duckdb":
        return condition
    return sqlglot.transpile(condition, read="duckdb", write=engine.dialect)[0]


def _columns(engine: Engine, table: str) -> list[str]:
    return engine.fetch_arrow(f"SELECT * FROM {quote_ident(table)} WHERE 1 = 0").schema.names


def ensure_tables(engine: Engine, model: str, model_table: str, key: str, plans: Sequence[Plan]):
    """Create the model's state table and the history table, and add the columns of
    audiences seen for the first time (an audience's old columns stay if it is removed)."""
    table = quote_ident(state_table(model))
    if not engine.table_exists(state_table(model)):
        with engine.transaction():
            engine.execute(
                f"CREATE TABLE {table} AS SELECT {quote_ident(key)} AS {KEY} "
                f"FROM {quote_ident(model_table)} WHERE 1 = 0"
            )
            if engine.dialect == "postgres":
                engine.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({KEY})")
    have = set(_columns(engine, state_table(model)))
    for plan in plans:
        for part, kind in (("split", "VARCHAR"), ("slot", "INTEGER"), ("ident", "VARCHAR")):
            if f"{plan.col}__{part}" not in have:
                engine.execute(f"ALTER TABLE {table} ADD COLUMN {plan.column(part)} {kind}")
    if not engine.table_exists(HISTORY):
        stamp = "TIMESTAMPTZ" if engine.dialect == "duckdb" else "TIMESTAMP WITH TIME ZONE"
        engine.execute(
            f"CREATE TABLE {HISTORY} (audience VARCHAR NOT NULL, split VARCHAR NOT NULL, "
            f"person_id VARCHAR NOT NULL, identifier VARCHAR, entered_at {stamp} NOT NULL, "
            f"left_at {stamp})"
        )


def forget_slots(engine: Engine, model: str, plan: Plan) -> None:
    """The salt changed: every kept slot of this audience is stale."""
    engine.execute(f"UPDATE {quote_ident(state_table(model))} SET {plan.column('slot')} = NULL")


def compute_delta(
    engine: Engine, model: str, model_table: str, key: str, plans: Sequence[Plan]
) -> str:
    """Write this run's delta table for ``plans`` (audiences over ``model``); return it.

    One FULL OUTER JOIN of the model (key, identifiers, one boolean per condition) with
    the state table, filtered on plain columns: a person changes in an audience when the
    condition disagrees with the kept membership, when the split their kept slot now
    belongs to is not the kept one (shares changed), or when their identifier changed.
    Only those rows get their new split worked out; only a person entering for the first
    time has their slot hashed (COALESCE evaluates the hash for those rows alone)."""
    model_q, state_q = quote_ident(model_table), quote_ident(state_table(model))
    delta = delta_table(model)
    k = quote_ident(key)
    inner, joined, changed, outer = [f"{k} AS {KEY}"], [], [], []
    as_text = f"CAST({KEY} AS VARCHAR)"
    for i, plan in enumerate(plans):
        by_key = plan.ident_column == key  # the identifier is the key: it never changes
        inner.append(f"COALESCE({_dialect_condition(engine, plan.condition)}, FALSE) AS hw_in{i}")
        joined += [
            f"COALESCE(c.hw_in{i}, FALSE) AS hw_in{i}",
            f"s.{plan.column('split')} AS hw_old{i}",
            f"s.{plan.column('slot')} AS hw_kept{i}",
        ]
        moved = f"{group_sql(plan.ranges, f'hw_kept{i}')} IS DISTINCT FROM hw_old{i}"
        if not by_key:
            inner.append(f"CAST({quote_ident(plan.ident_column)} AS VARCHAR) AS hw_id{i}")
            joined += [f"c.hw_id{i}", f"s.{plan.column('ident')} AS hw_oldid{i}"]
            moved += f" OR (hw_in{i} AND hw_id{i} IS DISTINCT FROM hw_oldid{i})"
        changed.append(
            f"hw_in{i} <> (hw_old{i} IS NOT NULL) OR (hw_old{i} IS NOT NULL AND ({moved}))"
        )
        hashed = slot_sql(engine.dialect, literal(plan.salt), KEY)
        slot = f"CASE WHEN hw_in{i} THEN COALESCE(hw_kept{i}, {hashed}) END"
        new_id = f"CASE WHEN hw_in{i} THEN {as_text if by_key else f'hw_id{i}'} END"
        old_id = f"CASE WHEN hw_old{i} IS NOT NULL THEN {as_text} END" if by_key else f"hw_oldid{i}"
        outer += [
            f"hw_old{i} AS {plan.column('old')}",
            f"CAST({slot} AS INTEGER) AS {plan.column('slot')}",
            f"{new_id} AS {plan.column('ident')}",
            f"{old_id} AS {plan.column('old_ident')}",
        ]
    news = [
        f"{group_sql(plan.ranges, plan.column('slot'))} AS {plan.column('new')}" for plan in plans
    ]
    sql = f"""
CREATE TABLE {quote_ident(delta)} AS
SELECT *, {", ".join(news)} FROM (
  SELECT {KEY}, {", ".join(outer)} FROM (
    SELECT COALESCE(c.{KEY}, s.{KEY}) AS {KEY}, {", ".join(joined)}
    FROM (SELECT {", ".join(inner)} FROM {model_q} WHERE {k} IS NOT NULL) AS c
    FULL OUTER JOIN {state_q} AS s ON c.{KEY} = s.{KEY}
  ) AS j
  WHERE {" OR ".join(f"({c})" for c in changed)}
) AS d
"""
    with engine.transaction():
        engine.execute(f"DROP TABLE IF EXISTS {quote_ident(delta)}")
        engine.execute(sql)
    return delta


def hit_sql(plan: Plan, alias: str = "") -> str:
    """Whether a delta row changes this audience: another split (or none), or the same
    split reached through a new identifier."""
    old, new = (alias + plan.column(p) for p in ("old", "new"))
    ident, old_ident = (alias + plan.column(p) for p in ("ident", "old_ident"))
    return (
        f"({new} IS DISTINCT FROM {old} OR ({old} IS NOT NULL AND {new} IS NOT NULL "
        f"AND {ident} IS DISTINCT FROM {old_ident}))"
    )


def iter_changes(engine: Engine, model: str, plan: Plan) -> Iterator[pa.RecordBatch]:
    """This audience's rows of the delta: key, old and new split, new and old identifier."""
    cols = ", ".join(plan.column(p) for p in ("old", "new", "ident", "old_ident"))
    sql = f"SELECT {KEY}, {cols} FROM {quote_ident(delta_table(model))} WHERE {hit_sql(plan)}"
    yield from engine.iter_arrow(sql, BATCH_ROWS)


def count_changes(engine: Engine, model: str, plan: Plan) -> dict[str, int]:
    """Entries, exits and other changes (moves between splits, a new identifier)."""
    old, new = plan.column("old"), plan.column("new")
    row = engine.fetch_all(
        f"SELECT COALESCE(SUM(CASE WHEN {old} IS NULL THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN {new} IS NULL THEN 1 ELSE 0 END), 0), count(*) "
        f"FROM {quote_ident(delta_table(model))} WHERE {hit_sql(plan)}"
    )[0]
    added, removed, total = (int(v) for v in row)
    return {"added": added, "removed": removed, "changed": total - added - removed}


def commit(
    engine: Engine, model: str, plan: Plan, keys: list | pa.Array | pa.ChunkedArray, now: str
) -> int:
    """Record that Braze accepted what was sent for ``keys``: the state moves to the new
    split, slot and identifier, and the history closes and opens stays. One transaction."""
    if len(keys) == 0:
        return 0
    column = keys if isinstance(keys, pa.Array | pa.ChunkedArray) else pa.array(keys)
    staged = f"hw_accepted_{suffix(plan.name)}_{uuid.uuid4().hex[:8]}"
    state_q, delta_q = quote_ident(state_table(model)), quote_ident(delta_table(model))
    old, new = plan.column("old"), plan.column("new")
    ident, old_ident = plan.column("ident"), plan.column("old_ident")
    hits = f"hw_hits_{suffix(plan.name)}_{uuid.uuid4().hex[:8]}"
    stamp = f"CAST({literal(now)} AS TIMESTAMPTZ)"
    if engine.dialect == "postgres":
        stamp = f"CAST({literal(now)} AS TIMESTAMP WITH TIME ZONE)"
    name = literal(plan.name)
    keep_ident = (
        ""
        if plan.ident_column == plan.primary_key
        else (f", {plan.column('ident')} = CASE WHEN h.n IS NULL THEN h.oi ELSE h.i END")
    )
    with engine.transaction():
        engine.load_arrow(staged, pa.table({KEY: column}), replace=True)
        engine.execute(
            f"CREATE TABLE {hits} AS SELECT d.{KEY}, d.{old} AS o, d.{new} AS n, "
            f"d.{plan.column('slot')} AS slot, d.{ident} AS i, d.{old_ident} AS oi "
            f"FROM {delta_q} AS d WHERE d.{KEY} IN (SELECT {KEY} FROM {staged}) "
            f"AND {hit_sql(plan, 'd.')}"
        )
        applied = engine.fetch_all(f"SELECT count(*) FROM {hits}")[0][0]
        engine.execute(
            f"INSERT INTO {state_q} ({KEY}) SELECT h.{KEY} FROM {hits} AS h "
            f"WHERE NOT EXISTS (SELECT 1 FROM {state_q} AS s WHERE s.{KEY} = h.{KEY})"
        )
        engine.execute(
            f"UPDATE {state_q} SET {plan.column('split')} = h.n, "
            f"{plan.column('slot')} = COALESCE(h.slot, {state_q}.{plan.column('slot')})"
            f"{keep_ident} FROM {hits} AS h WHERE {state_q}.{KEY} = h.{KEY}"
        )
        engine.execute(
            f"UPDATE {HISTORY} SET left_at = {stamp} WHERE audience = {name} "
            f"AND left_at IS NULL AND person_id IN (SELECT CAST({KEY} AS VARCHAR) FROM {hits} "
            f"WHERE o IS NOT NULL)"
        )
        engine.execute(
            f"INSERT INTO {HISTORY} (audience, split, person_id, identifier, entered_at) "
            f"SELECT {name}, n, CAST({KEY} AS VARCHAR), i, {stamp} FROM {hits} "
            f"WHERE n IS NOT NULL"
        )
        engine.execute(f"DROP TABLE {hits}")
        engine.execute(f"DROP TABLE {staged}")
    return int(applied)


def split_sizes(engine: Engine, model: str, audience: str) -> dict[str, int]:
    """Committed members per split (the holdout included)."""
    table = state_table(model)
    column = f"{suffix(audience)}__split"
    if not engine.table_exists(table) or column not in _columns(engine, table):
        return {}
    rows = engine.fetch_all(
        f"SELECT {quote_ident(column)}, count(*) FROM {quote_ident(table)} "
        f"WHERE {quote_ident(column)} IS NOT NULL GROUP BY 1"
    )
    return {str(name): int(count) for name, count in rows}


def read_history(
    engine: Engine, audience: str, person: str | None = None, limit: int = 50
) -> list[dict]:
    """The latest stays of an audience (of one person), newest first."""
    if not engine.table_exists(HISTORY):
        return []
    where = f"audience = {literal(audience)}"
    if person is not None:
        where += f" AND person_id = {literal(person)}"
    table = engine.fetch_arrow(
        f"SELECT person_id, split, identifier, entered_at, left_at FROM {HISTORY} "
        f"WHERE {where} ORDER BY entered_at DESC, person_id LIMIT {int(limit)}"
    )
    return table.to_pylist()


def fetch_records(engine: Engine, model_table: str, key: str, keys: list) -> dict[str, dict]:
    """Model rows by key (as text), for the entries handed to triggers."""
    if not keys:
        return {}
    staged = f"hw_entries_{uuid.uuid4().hex[:8]}"
    engine.load_arrow(staged, pa.table({KEY: pa.array(keys)}), replace=True)
    try:
        table = engine.fetch_arrow(
            f"SELECT * FROM {quote_ident(model_table)} "
            f"WHERE {quote_ident(key)} IN (SELECT {KEY} FROM {staged})"
        )
    finally:
        engine.execute(f"DROP TABLE IF EXISTS {staged}")
    return {str(row[key]): row for row in table.to_pylist()}
