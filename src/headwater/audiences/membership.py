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
from dataclasses import dataclass, replace

import pyarrow as pa
import sqlglot

from headwater.audiences.splits import group_sql, slot_sql
from headwater.engines import Engine, quote_ident
from headwater.errors import ConfigError
from headwater.state.audiences import Ranges

KEY = "hw_key"
MEMBERS = "hw_members"  # per person, one bit per audience they are in (any split)
BITS_PER_WORD = 62  # audiences per members column; the 63rd opens ``hw_members_1``, ...
HISTORY = "hw_audience_history"
BITS = "hw_audience_bits"  # per model and audience: its bit, and what its splits agree with
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
    bit: int = -1  # this audience's bit in the state table's members mask (ensure_tables)
    settled: bool = False  # every kept split agrees with ``ranges`` and ``salt``

    @property
    def word(self) -> int:
        """Which members column holds this audience's bit."""
        return self.bit // BITS_PER_WORD

    @property
    def mask(self) -> int:
        """The bit within its members column."""
        return 1 << (self.bit % BITS_PER_WORD)

    @property
    def members(self) -> str:
        return members_column(self.word)

    @property
    def signature(self) -> str:
        """What the kept splits were assigned under: the salt and the ranges."""
        spans = sorted((g, f, last) for g, ranges in self.ranges.items() for f, last in ranges)
        return f"{self.salt}|{spans}"

    @property
    def col(self) -> str:
        return suffix(self.name)

    def column(self, part: str) -> str:
        return quote_ident(f"{self.col}__{part}")


def members_column(word: int) -> str:
    """The state table's members column for bits ``62 * word`` to ``62 * word + 61``."""
    return MEMBERS if word == 0 else f"{MEMBERS}_{word}"


def _dialect_condition(engine: Engine, condition: str) -> str:
    if engine.dialect == "duckdb":
        return condition
    return sqlglot.transpile(condition, read="duckdb", write=engine.dialect)[0]


def _columns(engine: Engine, table: str) -> list[str]:
    return engine.fetch_arrow(f"SELECT * FROM {quote_ident(table)} WHERE 1 = 0").schema.names


def ensure_tables(
    engine: Engine, model: str, model_table: str, key: str, plans: Sequence[Plan]
) -> list[Plan]:
    """Create the model's state table, the history and the bits table, add the columns of
    audiences seen for the first time (a removed audience's stay), and return ``plans``
    with their bit and whether they are settled."""
    table = quote_ident(state_table(model))
    if not engine.table_exists(state_table(model)):
        with engine.transaction():
            engine.execute(
                f"CREATE TABLE {table} AS SELECT {quote_ident(key)} AS {KEY}, "
                f"CAST(0 AS BIGINT) AS {MEMBERS} FROM {quote_ident(model_table)} WHERE 1 = 0"
            )
            if engine.dialect == "postgres":
                engine.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({KEY})")
    have = set(_columns(engine, state_table(model)))
    for plan in plans:
        for part, kind in (("split", "VARCHAR"), ("slot", "INTEGER"), ("ident", "VARCHAR")):
            if f"{plan.col}__{part}" not in have:
                engine.execute(f"ALTER TABLE {table} ADD COLUMN {plan.column(part)} {kind}")
    stamp = "TIMESTAMPTZ" if engine.dialect == "duckdb" else "TIMESTAMP WITH TIME ZONE"
    if not engine.table_exists(HISTORY):
        engine.execute(
            f"CREATE TABLE {HISTORY} (audience VARCHAR NOT NULL, split VARCHAR NOT NULL, "
            f"person_id VARCHAR NOT NULL, identifier VARCHAR, entered_at {stamp} NOT NULL, "
            f"left_at {stamp})"
        )
    if not engine.table_exists(BITS):
        engine.execute(
            f"CREATE TABLE {BITS} (model VARCHAR NOT NULL, audience VARCHAR NOT NULL, "
            "bit INTEGER NOT NULL, settled_for VARCHAR)"
        )
    known = {
        audience: (int(bit), settled_for)
        for audience, bit, settled_for in engine.fetch_all(
            f"SELECT audience, bit, settled_for FROM {BITS} WHERE model = {literal(model)}"
        )
    }
    out = []
    for plan in plans:
        if plan.name not in known:  # a bit is never reused: a removed audience keeps its own
            bit = max((bit for bit, _ in known.values()), default=-1) + 1
            engine.execute(
                f"INSERT INTO {BITS} (model, audience, bit) VALUES "
                f"({literal(model)}, {literal(plan.name)}, {bit})"
            )
            known[plan.name] = (bit, None)
        bit, settled_for = known[plan.name]
        out.append(replace(plan, bit=bit, settled=settled_for == plan.signature))
    for word in sorted({plan.word for plan in out} - {0}):
        if members_column(word) not in have:
            engine.execute(f"ALTER TABLE {table} ADD COLUMN {members_column(word)} BIGINT")
    return out


def settle(engine: Engine, model: str, plan: Plan) -> bool:
    """Mark the audience settled if every kept split agrees with its slot under the
    current shares (nothing left to move); the diff then skips checking it row by row."""
    split, slot = plan.column("split"), plan.column("slot")
    wrong = engine.fetch_all(
        f"SELECT count(*) FROM {quote_ident(state_table(model))} WHERE {split} IS NOT NULL "
        f"AND {group_sql(plan.ranges, slot)} IS DISTINCT FROM {split}"
    )[0][0]
    if wrong:
        return False
    engine.execute(
        f"UPDATE {BITS} SET settled_for = {literal(plan.signature)} "
        f"WHERE model = {literal(model)} AND audience = {literal(plan.name)}"
    )
    return True


def forget_slots(engine: Engine, model: str, plan: Plan) -> None:
    """The salt changed: every kept slot of this audience is stale."""
    engine.execute(f"UPDATE {quote_ident(state_table(model))} SET {plan.column('slot')} = NULL")


def compute_delta(
    engine: Engine, model: str, model_table: str, key: str, plans: Sequence[Plan]
) -> str:
    """Write this run's delta table for ``plans`` (audiences over ``model``); return it.

    Pass 1 joins the model (key and a mask: one bit per condition met) with the state
    table (key and its members mask) and keeps the keys whose masks differ on these
    audiences' bits: two integers per row, whatever the number of audiences. Audiences not
    settled (shares or salt changed) or whose identifier is not the key are checked
    column by column too. Pass 2 works out old and new split, slot and identifier for
    just those keys, from the state and the model's mask; only a person entering for
    the first time has their slot hashed."""
    model_q, state_q = quote_ident(model_table), quote_ident(state_table(model))
    delta, cand = delta_table(model), quote_ident(f"{delta_table(model)}__candidates")
    k = quote_ident(key)
    words = sorted({plan.word for plan in plans})
    model_cols, state_cols, extra, differs = [f"{k} AS {KEY}"], [KEY], [], []
    for w in words:  # per members column: the conditions met, and what the state holds
        mine = [p for p in plans if p.word == w]
        mask = " + ".join(
            f"CASE WHEN {_dialect_condition(engine, p.condition)} THEN {p.mask} ELSE 0 END"
            for p in mine
        )
        run_bits = sum(p.mask for p in mine)
        model_cols.append(f"{mask} AS hw_mask{w}")
        state_cols.append(members_column(w))
        differs.append(
            f"(COALESCE(c.hw_mask{w}, 0) & {run_bits}) "
            f"<> (COALESCE(s.{members_column(w)}, 0) & {run_bits})"
        )
    for i, plan in enumerate(plans):
        by_key = plan.ident_column == key
        if plan.settled and by_key:
            continue
        member = f"(COALESCE(c.hw_mask{plan.word}, 0) & {plan.mask}) <> 0"
        state_cols += [plan.column("split"), plan.column("slot")]
        moved = "FALSE" if plan.settled else (
            f"{group_sql(plan.ranges, 's.' + plan.column('slot'))} "
            f"IS DISTINCT FROM s.{plan.column('split')}"
        )  # fmt: skip
        if not by_key:
            model_cols.append(f"CAST({quote_ident(plan.ident_column)} AS VARCHAR) AS hw_id{i}")
            state_cols.append(plan.column("ident"))
            moved += f" OR ({member} AND c.hw_id{i} IS DISTINCT FROM s.{plan.column('ident')})"
        extra.append(f"(s.{plan.column('split')} IS NOT NULL AND ({moved}))")
    ids = "".join(f", c.hw_id{i}" for i, plan in enumerate(plans) if plan.ident_column != key)
    masks = "".join(f", COALESCE(c.hw_mask{w}, 0) AS hw_mask{w}" for w in words)
    pass1 = f"""
CREATE TABLE {cand} AS
SELECT COALESCE(c.{KEY}, s.{KEY}) AS {KEY}{masks}{ids}
FROM (SELECT {", ".join(model_cols)} FROM {model_q} WHERE {k} IS NOT NULL) AS c
FULL OUTER JOIN (SELECT {", ".join(state_cols)} FROM {state_q}) AS s ON c.{KEY} = s.{KEY}
WHERE {" OR ".join(differs + extra)}
"""
    outer = []
    as_text = f"CAST(x.{KEY} AS VARCHAR)"
    for i, plan in enumerate(plans):
        by_key = plan.ident_column == key
        member = f"(x.hw_mask{plan.word} & {plan.mask}) <> 0"
        hashed = slot_sql(engine.dialect, literal(plan.salt), f"x.{KEY}")
        slot = f"CASE WHEN {member} THEN COALESCE(s.{plan.column('slot')}, {hashed}) END"
        new_id = as_text if by_key else f"x.hw_id{i}"
        old_id = as_text if by_key else f"s.{plan.column('ident')}"
        outer += [
            f"s.{plan.column('split')} AS {plan.column('old')}",
            f"CAST({slot} AS INTEGER) AS {plan.column('slot')}",
            f"CASE WHEN {member} THEN {new_id} END AS {plan.column('ident')}",
            f"CASE WHEN s.{plan.column('split')} IS NOT NULL THEN {old_id} END "
            f"AS {plan.column('old_ident')}",
        ]
    news = [
        f"{group_sql(plan.ranges, plan.column('slot'))} AS {plan.column('new')}" for plan in plans
    ]
    pass2 = f"""
CREATE TABLE {quote_ident(delta)} AS
SELECT *, {", ".join(news)} FROM (
  SELECT x.{KEY}, {", ".join(outer)}
  FROM {cand} AS x
  LEFT JOIN (SELECT * FROM {state_q} WHERE {KEY} IN (SELECT {KEY} FROM {cand})) AS s
    ON s.{KEY} = x.{KEY}
) AS d
"""
    with engine.transaction():
        engine.execute(f"DROP TABLE IF EXISTS {quote_ident(delta)}")
        engine.execute(f"DROP TABLE IF EXISTS {cand}")
        engine.execute(pass1)
        engine.execute(pass2)
        engine.execute(f"DROP TABLE {cand}")
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
    name, members = literal(plan.name), plan.members
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
            f"UPDATE {state_q} SET {plan.column('split')} = h.n, {members} = CASE WHEN h.n IS NULL "
            f"THEN COALESCE({state_q}.{members}, 0) & {~plan.mask} "
            f"ELSE COALESCE({state_q}.{members}, 0) | {plan.mask} END, "
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
