"""The last values Braze accepted, per sync, kept in the engine that holds the model.

A sync's snapshot is one table, ``hw_snapshot_<sync>``: the key (``hw_key``), one column
per mapped model column holding the value last *delivered*, and ``hw_hash``, a row hash
of those columns that lets the diff skip unchanged rows without comparing every column
(DuckDB only; PostgreSQL compares the columns, see ``hashes_rows``).

Only rows Braze accepted are written, one batch of keys at a time, each batch in its own
transaction: a process killed between batches loses nothing, and rows that failed keep
their old snapshot so the next run sends them again. Commits copy values from this run's
diff table (what was sent), never from the live model, so a model rebuilt mid-run cannot
record values Braze never saw. Committing the same keys twice gives the same snapshot.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp

from headwater.engines import Engine, quote_ident
from headwater.errors import ConfigError

KEY = "hw_key"
HASH = "hw_hash"
KIND = "hw_kind"
RESERVED_PREFIX = "hw_"
_ROW_HASH = "HW_ROW_HASH"


def table_suffix(sync_name: str) -> str:
    """A sync name made safe for a table name; rejects names that would collide or vanish."""
    suffix = re.sub(r"[^a-z0-9_]", "_", sync_name.lower())
    if not suffix.strip("_"):
        raise ConfigError(f"sync name {sync_name!r} cannot name a table")
    return suffix


def snapshot_table(sync_name: str) -> str:
    return f"hw_snapshot_{table_suffix(sync_name)}"


def diff_table(sync_name: str) -> str:
    return f"hw_diff_{table_suffix(sync_name)}"


def check_columns(key: str, columns: Sequence[str]) -> None:
    """Mapped columns must be distinct and must not shadow the snapshot's own columns."""
    if not columns:
        raise ConfigError("a sync needs at least one mapped column")
    if len(set(columns)) != len(columns):
        raise ConfigError(f"mapped columns repeat: {list(columns)}")
    for name in (key, *columns):
        if name.lower().startswith(RESERVED_PREFIX):
            raise ConfigError(f"column {name!r}: names starting with 'hw_' are reserved")


def hashes_rows(engine: Engine) -> bool:
    """Whether the diff finds candidate rows by hash (DuckDB: a vectorised hash of the row
    is far cheaper than comparing its columns) or by comparing the columns (PostgreSQL)."""
    return engine.dialect == "duckdb"


def row_hash(engine: Engine, table: str, columns: Sequence[str]) -> str:
    """The row-hash call over ``table``'s ``columns``, in DuckDB dialect (see ``render_sql``).

    DuckDB hashes a NULL list, an empty list and ``[NULL]`` alike, and a NULL struct like
    one whose fields are NULL, so nested columns also hash their null flag and length:
    otherwise a change from null to ``[]`` would slip past the hash filter unseen.

    PostgreSQL keeps no hash (NULL): hashing a row there means printing it as text, which
    costs more than comparing the columns themselves (``hashes_rows``).
    """
    if not hashes_rows(engine):
        return "CAST(NULL AS BIGINT)"
    nested: dict[str, pa.DataType] = {}
    if engine.dialect == "duckdb":
        names = ", ".join(quote_ident(c) for c in columns)
        schema = engine.fetch_arrow(f"SELECT {names} FROM {quote_ident(table)} LIMIT 0").schema
        nested = {f.name: f.type for f in schema if pa.types.is_nested(f.type)}
    parts = []
    for column in columns:
        q = quote_ident(column)
        parts.append(q)
        if column in nested:
            parts.append(f"{q} IS NULL")
            if pa.types.is_list(nested[column]) or pa.types.is_large_list(nested[column]):
                parts.append(f"len({q})")
    return f"{_ROW_HASH}({', '.join(parts)})"


def render_sql(engine: Engine, sql: str) -> str:
    """Transpile DuckDB-dialect SQL for ``engine``, swapping in its native row hash
    (DuckDB's ``hash(a, b, ...)``; only engines that ``hashes_rows`` are asked for one)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    target = "postgres" if engine.dialect == "postgres" else engine.dialect

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Anonymous) and node.name.upper() == _ROW_HASH:
            args = ", ".join(a.sql(target) for a in node.expressions)
            if engine.dialect == "duckdb":
                return sqlglot.parse_one(f"hash({args})", read="duckdb")
            raise ConfigError(f"diffing inside {engine.dialect} is not supported")
        return node

    return tree.transform(swap).sql(target)


def run(engine: Engine, sql: str, *, scratch: bool = False) -> None:
    """Run DuckDB-dialect ``sql`` on ``engine``. ``scratch``: the tables it creates are
    rebuilt by every run (a diff), so PostgreSQL need not write them to its WAL. (DuckDB
    keeps them stored: the diff is read through a second connection, which cannot see
    temporary tables.)"""
    rendered = render_sql(engine, sql)
    if scratch and engine.dialect == "postgres" and rendered.startswith("CREATE TABLE "):
        rendered = "CREATE UNLOGGED TABLE " + rendered.removeprefix("CREATE TABLE ")
    engine.execute(rendered)


def _snapshot_columns(engine: Engine, table: str) -> list[str]:
    schema = engine.fetch_arrow(f"SELECT * FROM {quote_ident(table)} WHERE 1 = 0").schema
    return [n for n in schema.names if n not in (KEY, HASH)]


def ensure_snapshot(
    engine: Engine, sync_name: str, model_table: str, key: str, columns: Sequence[str]
) -> str:
    """Create the sync's snapshot, or reshape it when the mapping changed; return its name.

    A reshape keeps every kept column's delivered values, adds new columns as NULL (so
    their values count as changes and are sent) and recomputes the hash.
    """
    check_columns(key, columns)
    table = snapshot_table(sync_name)
    model = quote_ident(model_table)
    if not engine.table_exists(table):
        with engine.transaction():
            run(
                engine,
                f"CREATE TABLE {quote_ident(table)} AS SELECT {quote_ident(key)} AS {KEY}, "
                + ", ".join(quote_ident(c) for c in columns)
                + f", {row_hash(engine, model_table, columns)} AS {HASH} "
                + f"FROM {model} WHERE 1 = 0",
            )
            if engine.dialect == "postgres":
                engine.execute(f"ALTER TABLE {quote_ident(table)} ADD PRIMARY KEY ({KEY})")
        return table
    existing = _snapshot_columns(engine, table)
    if existing == list(columns):
        return table
    kept = set(existing)
    values = ", ".join(
        (f"s.{quote_ident(c)}" if c in kept else f"CASE WHEN FALSE THEN m.{quote_ident(c)} END")
        + f" AS {quote_ident(c)}"
        for c in columns
    )
    rebuilt = f"{table}__reshape"
    with engine.transaction():
        engine.execute(f"DROP TABLE IF EXISTS {quote_ident(rebuilt)}")
        run(
            engine,
            f"CREATE TABLE {quote_ident(rebuilt)} AS SELECT s.{KEY}, {values} "
            f"FROM {quote_ident(table)} AS s "
            f"LEFT JOIN (SELECT * FROM {model} WHERE 1 = 0) AS m ON TRUE",
        )
        engine.execute(f"DROP TABLE {quote_ident(table)}")
        run(
            engine,
            f"CREATE TABLE {quote_ident(table)} AS "
            f"SELECT *, {row_hash(engine, rebuilt, columns)} AS {HASH} "
            f"FROM {quote_ident(rebuilt)}",
        )
        engine.execute(f"DROP TABLE {quote_ident(rebuilt)}")
        if engine.dialect == "postgres":
            engine.execute(f"ALTER TABLE {quote_ident(table)} ADD PRIMARY KEY ({KEY})")
    return table


def _keys_table(keys: Sequence | pa.Array | pa.ChunkedArray | pa.Table) -> pa.Table:
    if isinstance(keys, pa.Table):
        return (
            keys.select([KEY])
            if KEY in keys.column_names
            else keys.select([0]).rename_columns([KEY])
        )
    if isinstance(keys, pa.RecordBatch):
        return _keys_table(pa.Table.from_batches([keys]))
    column = keys if isinstance(keys, pa.Array | pa.ChunkedArray) else pa.array(list(keys))
    return pa.table({KEY: column})


def commit_accepted(
    engine: Engine, sync_name: str, keys: Sequence | pa.Array | pa.ChunkedArray | pa.Table
) -> int:
    """Record that Braze accepted ``keys`` from this run's diff; return how many were applied.

    Added and changed keys get the values that were sent; removed keys leave the snapshot.
    Keys that are not in this run's diff are ignored. One transaction: all or nothing.
    """
    accepted = _keys_table(keys)
    if accepted.num_rows == 0:
        return 0
    if engine.dialect == "postgres":
        return _commit_postgres(engine, sync_name, accepted)
    snap, diff = quote_ident(snapshot_table(sync_name)), quote_ident(diff_table(sync_name))
    suffix = f"{table_suffix(sync_name)}_{uuid.uuid4().hex[:8]}"
    staged_name = f"hw_accepted_{suffix}"
    staged, hits = quote_ident(staged_name), quote_ident(f"hw_hits_{suffix}")
    columns = _snapshot_columns(engine, snapshot_table(sync_name))
    values = ", ".join(quote_ident(c) for c in columns)
    # The diff is scanned once per commit, into a table of just the accepted rows; the
    # snapshot's delete and insert then work from that small table.
    with engine.transaction():
        engine.load_arrow(staged_name, accepted, replace=True)
        engine.execute(
            f"CREATE TEMP TABLE {hits} AS SELECT d.{KEY}, d.{KIND}, "
            f"{', '.join('d.' + quote_ident(c) for c in columns)}, d.{HASH} "
            f"FROM {diff} AS d WHERE d.{KEY} IN (SELECT {KEY} FROM {staged})"
        )
        applied = engine.fetch_all(f"SELECT count(*) FROM {hits}")[0][0]
        engine.execute(f"DELETE FROM {snap} WHERE {KEY} IN (SELECT {KEY} FROM {hits})")
        engine.execute(
            f"INSERT INTO {snap} ({KEY}, {values}, {HASH}) "
            f"SELECT {KEY}, {values}, {HASH} FROM {hits} WHERE {KIND} <> 'removed'"
        )
        engine.execute(f"DROP TABLE {hits}")
        engine.execute(f"DROP TABLE {staged}")
    return applied


def _commit_postgres(engine: Engine, sync_name: str, accepted: pa.Table) -> int:
    """``commit_accepted`` on PostgreSQL: one statement looks the accepted keys up in the
    diff by its key index and writes them into the snapshot by its primary key.

    Each key is a lookup, never a scan: a 10M-row first sync commits 50 times, and joins
    that read the whole diff (and the whole snapshot) cost up to 6-7 s a commit. Changed
    rows are updated in place, not deleted and inserted again; added rows are inserted
    (updated if an earlier commit of theirs got there first); rows already holding the
    values (a key committed twice, ``--full``'s unchanged rows) are not written at all.
    """
    snap, diff = quote_ident(snapshot_table(sync_name)), quote_ident(diff_table(sync_name))
    columns = _snapshot_columns(engine, snapshot_table(sync_name))
    quoted = [quote_ident(c) for c in columns]
    values = ", ".join(quoted)
    # One copy of each key (an UPDATE must not meet a row twice), in key order: the
    # lookups walk the indexes forward.
    unique = pc.unique(accepted.column(KEY).combine_chunks()).drop_null()
    keys = pa.table({KEY: unique}).sort_by(KEY)
    staged_name = f"hw_accepted_{uuid.uuid4().hex[:8]}"
    staged = quote_ident(staged_name)

    def differs(new: str) -> str:
        return (
            f"({', '.join(f's.{q}' for q in quoted)}) IS DISTINCT FROM "
            f"({', '.join(f'{new}.{q}' for q in quoted)})"
        )

    with engine.transaction():
        # Keys looked up in two big tables: never hash or sort either, nor compile code
        # for a statement this short.
        for setting in ("enable_hashjoin", "enable_mergejoin", "jit"):
            engine.execute(f"SET LOCAL {setting} = off")
        engine.execute(
            f"CREATE TEMP TABLE {staged} ON COMMIT DROP AS SELECT {KEY} FROM {diff} LIMIT 0"
        )
        engine.copy_arrow(staged_name, keys)  # type: ignore[attr-defined]
        # Every part reads the snapshot as it was before the statement; they touch
        # different keys (a diff lists a key once, with one kind).
        applied = engine.fetch_all(
            f"""
WITH hits AS MATERIALIZED (
  SELECT d.{KEY}, d.{KIND}, {", ".join(f"d.{q}" for q in quoted)}, d.{HASH}
  FROM {staged} AS a JOIN {diff} AS d ON d.{KEY} = a.{KEY}
), gone AS (
  DELETE FROM {snap} AS s USING hits AS h
  WHERE h.{KIND} = 'removed' AND s.{KEY} = h.{KEY}
), changed AS (
  UPDATE {snap} AS s SET {", ".join(f"{q} = h.{q}" for q in [*quoted, HASH])}
  FROM hits AS h
  WHERE h.{KIND} IN ('changed', 'unchanged') AND s.{KEY} = h.{KEY} AND {differs("h")}
), added AS (
  INSERT INTO {snap} AS s ({KEY}, {values}, {HASH})
  SELECT {KEY}, {values}, {HASH} FROM hits WHERE {KIND} = 'added'
  ON CONFLICT ({KEY}) DO UPDATE SET {", ".join(f"{q} = EXCLUDED.{q}" for q in [*quoted, HASH])}
  WHERE {differs("EXCLUDED")}
)
SELECT count(*) FROM hits"""
        )[0][0]
    return applied


def drop_snapshot(engine: Engine, sync_name: str) -> None:
    """Forget what was delivered: the next run sends every row as new."""
    for table in (snapshot_table(sync_name), diff_table(sync_name)):
        engine.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
