"""Attribute-level diff of a model against its sync's snapshot, inside the engine.

The model never leaves the engine that holds it (DuckDB, or the user's PostgreSQL):
generated SQL, written once in DuckDB's dialect and transpiled with sqlglot, writes
this run's diff table ``hw_diff_<sync>``, and the sync engine streams it out in Arrow
batches. Two passes keep it fast on tens of millions of rows:

1. join model and snapshot on key *and row hash* only, to find candidate keys
   (new, gone, or hash differs) -- about the cost of a bare hash comparison;
2. compare the candidates column by column (``IS DISTINCT FROM``, so NULLs and arrays
   compare right) and record which columns changed.

PostgreSQL, where a row hash costs more than the comparison, does both at once: one join
on the key compares the columns and writes the rows that differ, with their masks.

Which columns to send is a bitmask per row, ``hw_mask0``, ``hw_mask1``, ... (62 columns
per word, bit i of word i // 62 is mapped column i). A set bit with a NULL value means
"set to null" (Braze unsets the attribute); a clear bit means "leave alone". So:

* added   -- every mapped column's bit is set;
* changed -- the bits of the columns whose value differs from the snapshot;
* removed -- the bits of the columns the snapshot held a value for, so an ``unset``
  policy sends nulls for exactly what Braze has; the values are NULL;
* unchanged -- not in the table (with ``full=True`` they are, every bit set).

The diff table keeps the full model values of each row it lists and the row hash: the
snapshot commit copies them from here, so what is recorded is what was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from headwater.engines import DEFAULT_BATCH_ROWS, Engine, SqlAlchemyEngine, quote_ident
from headwater.sources.base import quote_literal
from headwater.syncs.snapshot import (
    HASH,
    KEY,
    KIND,
    diff_table,
    ensure_snapshot,
    hashes_rows,
    render_sql,
    row_hash,
    run,
)

log = logging.getLogger(__name__)

BITS_PER_MASK = 62
ADDED, CHANGED, REMOVED, UNCHANGED = "added", "changed", "removed", "unchanged"


def mask_names(column_count: int) -> list[str]:
    return [f"hw_mask{w}" for w in range((column_count - 1) // BITS_PER_MASK + 1)]


def _bit(i: int) -> tuple[int, int]:
    return i // BITS_PER_MASK, 1 << (i % BITS_PER_MASK)


@dataclass(frozen=True)
class DiffResult:
    """Where this run's diff is and what it holds."""

    sync_name: str
    table: str
    key: str
    columns: tuple[str, ...]
    full: bool
    added: int
    changed: int
    removed: int
    unchanged: int
    null_keys: int = 0

    @property
    def masks(self) -> list[str]:
        return mask_names(len(self.columns))

    @property
    def rows(self) -> int:
        """Rows in the diff table: what the sync engine will look at."""
        return self.added + self.changed + self.removed + (self.unchanged if self.full else 0)


def _mask_sql(columns: Sequence[str], condition: str) -> list[str]:
    """One BIGINT per mask word: the sum of the bits whose column meets ``condition``."""
    words: list[list[str]] = [[] for _ in mask_names(len(columns))]
    for i, column in enumerate(columns):
        word, bit = _bit(i)
        words[word].append(
            f"CASE WHEN {condition.format(c=quote_ident(column))} THEN {bit} ELSE 0 END"
        )
    return [f"CAST({' + '.join(parts)} AS BIGINT)" for parts in words]


def _all_bits(columns: Sequence[str]) -> list[int]:
    words = [0] * len(mask_names(len(columns)))
    for i in range(len(columns)):
        word, bit = _bit(i)
        words[word] |= bit
    return words


def diff_sql(
    snap: str,
    diff: str,
    model_table: str,
    key: str,
    columns: Sequence[str],
    *,
    full: bool,
    hash_sql: str,
    first_run: bool,
    by_hash: bool = True,
    key_range: tuple[str | None, str | None] = (None, None),
    as_select: bool = False,
) -> list[str]:
    """The statements that write the diff table (DuckDB dialect; see ``render_sql``).

    Pass 1 joins model and snapshot on (key, hash) only -- narrow rows, like a bare hash
    comparison -- into a candidates table: new keys, gone keys, hashes that differ. Pass 2
    fetches the attribute columns of just those keys from both sides (semi-joins, so the
    big tables are only scanned) and compares them. On a first run (empty snapshot) every
    row is new and pass 2 reads the model straight through. Without a row hash
    (``by_hash=False``, PostgreSQL) pass 1 compares the columns themselves, so it writes
    the diff in one statement; ``key_range`` (SQL literals, ``None`` for open) limits it
    to keys from the first bound up to (not including) the second, and ``as_select``
    returns its SELECT instead, for another connection to run.
    """
    model, k = quote_ident(model_table), quote_ident(key)
    snap, masks = quote_ident(snap), mask_names(len(columns))
    quoted = [quote_ident(c) for c in columns]
    added_bits = _all_bits(columns)
    if first_run:
        all_masks = ", ".join(
            f"CAST({bits} AS BIGINT) AS {name}"
            for name, bits in zip(masks, added_bits, strict=True)
        )
        return [
            f"CREATE TABLE {quote_ident(diff)} AS SELECT {k} AS {KEY}, 'added' AS {KIND}, "
            f"{hash_sql} AS {HASH}, {all_masks}, {', '.join(quoted)} "
            f"FROM {model} WHERE {k} IS NOT NULL"
        ]
    cand = quote_ident(f"{diff}__candidates")
    # What each side brings to the join, and when a matched key is a candidate.
    if by_hash:
        m_cols, s_cols, differs = f"{hash_sql} AS {HASH}", HASH, f"m.{HASH} <> s.{HASH}"
    else:
        m_cols, s_cols = ", ".join(quoted), ", ".join(quoted)
        differs = (
            f"({', '.join('m.' + q for q in quoted)}) IS DISTINCT FROM "
            f"({', '.join('s.' + q for q in quoted)})"
        )
    candidates_filter = "" if full else f"WHERE m.{KEY} IS NULL OR s.{KEY} IS NULL OR {differs}"
    removed_bits = _mask_sql(columns, "s.{c} IS NOT NULL")
    changed_bits = _mask_sql(columns, "m.{c} IS DISTINCT FROM s.{c}")

    def mask_cols(kind: str) -> str:
        return ", ".join(
            f"CASE {kind} WHEN 'added' THEN CAST({a} AS BIGINT) WHEN 'removed' THEN {r} "
            f"ELSE {ch} END AS {name}"
            for name, a, r, ch in zip(masks, added_bits, removed_bits, changed_bits, strict=True)
        )

    no_change = " AND ".join(f"d.{name} = 0" for name in masks)
    outer_masks = ", ".join(
        f"CASE WHEN d.{KIND} = 'changed' THEN CAST({bits} AS BIGINT) ELSE d.{name} END AS {name}"
        if full
        else f"d.{name}"
        for name, bits in zip(masks, added_bits, strict=True)
    )
    # Rows whose hash differed but whose columns did not are dropped. (Rows the join kept
    # for differing columns always have a bit set: PostgreSQL, which would push this
    # filter into the join and work out every row's masks, is not asked.)
    drop_unchanged = by_hash and not full
    outer = f"""
SELECT d.{KEY},
       CASE WHEN d.{KIND} = 'changed' AND {no_change} THEN 'unchanged' ELSE d.{KIND} END
         AS {KIND},
       d.{HASH}, {outer_masks}, {", ".join("d." + q for q in quoted)}
FROM d
{f"WHERE NOT (d.{KIND} = 'changed' AND {no_change})" if drop_unchanged else ""}
"""
    kind = (
        f"CASE WHEN s.{KEY} IS NULL THEN 'added' WHEN m.{KEY} IS NULL THEN 'removed' "
        f"ELSE 'changed' END"
    )
    if not by_hash:
        # The join compares every column already: it writes the diff itself, values and
        # masks of just the rows it keeps, instead of a candidates table whose rows a
        # second pass looks up again on both sides.
        low, high = key_range
        m_range = "".join(
            f" AND {k} {op} {bound}" for op, bound in ((">=", low), ("<", high)) if bound
        )
        s_range = " AND ".join(
            f"{KEY} {op} {bound}" for op, bound in ((">=", low), ("<", high)) if bound
        )
        select = f"""
WITH d AS (
  SELECT COALESCE(m.{KEY}, s.{KEY}) AS {KEY}, {kind} AS {KIND}, {hash_sql} AS {HASH},
         {mask_cols(kind)}, {", ".join("m." + q for q in quoted)}
  FROM (SELECT {k} AS {KEY}, {m_cols} FROM {model} WHERE {k} IS NOT NULL{m_range}) AS m
  FULL OUTER JOIN (SELECT {KEY}, {s_cols} FROM {snap}{f" WHERE {s_range}" if s_range else ""}) AS s
    ON m.{KEY} = s.{KEY}
  {candidates_filter}
){outer}"""
        return [select] if as_select else [f"CREATE TABLE {quote_ident(diff)} AS {select}"]
    return [
        f"DROP TABLE IF EXISTS {cand}",
        f"""
CREATE TABLE {cand} AS
SELECT COALESCE(m.{KEY}, s.{KEY}) AS {KEY}, m.{HASH} AS {HASH}, {kind} AS {KIND}
FROM (SELECT {k} AS {KEY}, {m_cols} FROM {model} WHERE {k} IS NOT NULL) AS m
FULL OUTER JOIN (SELECT {KEY}, {s_cols} FROM {snap}) AS s ON m.{KEY} = s.{KEY}
{candidates_filter}
""",
        f"""
CREATE TABLE {quote_ident(diff)} AS
WITH mv AS (
  SELECT {k} AS {KEY}, {", ".join(quoted)} FROM {model}
  WHERE {k} IN (SELECT {KEY} FROM {cand} WHERE {KIND} <> 'removed')
), sv AS (
  SELECT * FROM {snap} WHERE {KEY} IN (SELECT {KEY} FROM {cand} WHERE {KIND} <> 'added')
), d AS (
  SELECT c.{KEY}, c.{KIND}, c.{HASH}, {mask_cols(f"c.{KIND}")}, {", ".join("m." + q for q in quoted)}
  FROM {cand} AS c
  LEFT JOIN mv AS m ON m.{KEY} = c.{KEY}
  LEFT JOIN sv AS s ON s.{KEY} = c.{KEY}
){outer}""",
        f"DROP TABLE {cand}",
    ]


def compute_diff(
    engine: Engine,
    sync_name: str,
    model_table: str,
    key: str,
    columns: Sequence[str],
    *,
    full: bool = False,
    rows: int | None = None,
    checks: Callable[[], int | Callable[[], int]] | None = None,
    model_sql: str | None = None,
    model_setup: Sequence[str] = (),
) -> DiffResult:
    """Diff ``model_table`` against the sync's snapshot and write this run's diff table.

    ``full=True`` lists every model row with every bit set: a resend of everything, with
    the kinds still telling what really changed. Rows with a NULL key are skipped and
    counted in ``null_keys``; keys must otherwise be unique (the model guarantees it).
    ``rows``: the table's row count when every row is known to have a key (a checked
    model's primary key is required), which saves counting them. ``checks``: run first,
    in the diff's own transaction, returning that count or the function that waits for it
    (a model read in place is checked there: on PostgreSQL the transaction is REPEATABLE
    READ, so the checks and the diff read the same rows even while the source is being
    written, and ``ModelResult.start_checks`` reads them beside the diff, on a second
    connection sharing the transaction's snapshot).

    On PostgreSQL a big diff (not a first run, not ``full``) is split at the snapshot's
    middle key, and the upper half runs on a second connection sharing the transaction's
    snapshot, beside the lower half (PostgreSQL runs no full join in parallel itself).
    That connection reads the model as ``model_sql`` (after ``model_setup``) when it is
    given (a temporary view of this connection, which no other can see), else
    ``model_table`` itself when it is a table of the database.
    """
    columns = tuple(columns)
    snap = ensure_snapshot(engine, sync_name, model_table, key, columns)
    diff = diff_table(sync_name)
    with engine.transaction():
        if engine.dialect == "postgres":
            # One state of the database for every statement here, and for the
            # connections that read beside them (checks, half of the diff).
            engine.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if checks is not None:
            counted = checks()
        engine.execute(f"DROP TABLE IF EXISTS {quote_ident(diff)}")
        first_run = not engine.fetch_all(f"SELECT 1 FROM {quote_ident(snap)} LIMIT 1")
        options = {
            "full": full,
            "hash_sql": row_hash(engine, model_table, columns),
            "first_run": first_run,
            "by_hash": hashes_rows(engine),
        }
        upper = None
        if engine.dialect == "postgres" and not (first_run or full):
            # Model and snapshot both have an index on the key (the model's unique index,
            # the snapshot's primary key): walking them side by side beats hashing a
            # million keys, and finds the few candidates by index afterwards. (Nor sort:
            # the snapshot has no statistics until analysed, and the planner took half
            # of it for a few rows, to be read and sorted.)
            for statement in MERGE_ONLY:
                engine.execute(statement)
            upper = _upper_half_beside(
                engine, snap, diff, model_table, key, columns, model_sql, model_setup, options
            )
        key_range = (None, upper[0]) if upper else (None, None)
        for statement in diff_sql(
            snap, diff, model_table, key, columns, key_range=key_range, **options
        ):
            run(engine, statement, scratch=True)
        if upper:
            _take_upper_half(engine, diff, upper)
        if engine.dialect == "postgres":
            # Snapshot commits look rows up by key, a batch at a time: without an index
            # each commit would read the whole diff (a first sync: every row, 20 times).
            engine.execute(f"CREATE INDEX ON {quote_ident(diff)} ({KEY})")
            engine.execute(f"ANALYZE {quote_ident(diff)}")
        if checks is not None:
            rows = counted() if callable(counted) else counted
    counts = dict(engine.fetch_all(f"SELECT {KIND}, count(*) FROM {quote_ident(diff)} GROUP BY 1"))
    if rows is None:
        total, with_key = engine.fetch_all(
            f"SELECT count(*), count({quote_ident(key)}) FROM {quote_ident(model_table)}"
        )[0]
    else:
        total = with_key = rows
    added, changed = counts.get(ADDED, 0), counts.get(CHANGED, 0)
    return DiffResult(
        sync_name=sync_name,
        table=diff,
        key=key,
        columns=columns,
        full=full,
        added=added,
        changed=changed,
        removed=counts.get(REMOVED, 0),
        unchanged=with_key - added - changed,
        null_keys=total - with_key,
    )


# A PostgreSQL diff is split in two when a sample of this share of the snapshot's pages
# (percent) holds this many rows: about a million rows, where the split saves seconds.
SPLIT_SAMPLE_PERCENT = 1
SPLIT_MIN_SAMPLE = 10_000
# The join walks both key indexes side by side (both connections of a split diff).
MERGE_ONLY = ("SET LOCAL enable_hashjoin = off", "SET LOCAL enable_sort = off")


def _upper_half_beside(
    engine: Engine,
    snap: str,
    diff: str,
    model_table: str,
    key: str,
    columns: Sequence[str],
    model_sql: str | None,
    model_setup: Sequence[str],
    options: dict,
) -> tuple[str, str, Callable[[], IO[bytes]]] | None:
    """Start the diff of the keys from the snapshot's middle key up on a second
    connection; return that key (a SQL literal), the half's SELECT and the function that
    waits for its rows. None when the snapshot is small or the model cannot be read there."""
    if not isinstance(engine, SqlAlchemyEngine):
        return None
    if model_sql is not None:
        reader = (*model_setup, f"CREATE TEMP VIEW {quote_ident(model_table)} AS {model_sql}")
    else:
        found = engine.fetch_all(
            "SELECT relpersistence FROM pg_class "
            f"WHERE oid = to_regclass({quote_literal(quote_ident(model_table))})"
        )
        if not found or found[0][0] not in ("p", "u"):  # a temporary table: only here
            return None
        reader = ()
    sampled, middle = engine.fetch_all(
        f"SELECT count(*), quote_literal(percentile_disc(0.5) WITHIN GROUP (ORDER BY {KEY})) "
        f"FROM {quote_ident(snap)} TABLESAMPLE SYSTEM ({SPLIT_SAMPLE_PERCENT}) REPEATABLE (0)"
    )[0]
    if sampled < SPLIT_MIN_SAMPLE or middle is None or not middle.startswith("'"):
        return None  # (an E'...' literal, for a key with a backslash: not worth the risk)
    (select,) = diff_sql(
        snap, diff, model_table, key, columns, key_range=(middle, None), as_select=True, **options
    )
    rendered = render_sql(engine, select)
    rows = engine.copy_beside(rendered, (*reader, *MERGE_ONLY))
    return middle, rendered, rows


def _take_upper_half(
    engine: Engine, diff: str, upper: tuple[str, str, Callable[[], IO[bytes]]]
) -> None:
    """Add the upper half's rows to the diff table; if the second connection failed, the
    half runs here after all (slower, same rows)."""
    _middle, select, rows = upper
    try:
        spooled = rows()
    except Exception:
        log.warning("the diff's second connection failed; its half runs here", exc_info=True)
        engine.execute(f"INSERT INTO {quote_ident(diff)} {select}")
        return
    with spooled:
        engine.copy_in(diff, spooled)  # type: ignore[attr-defined]


def iter_diff(
    engine: Engine, result: DiffResult, batch_size: int = DEFAULT_BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """Stream the diff: ``hw_key``, ``hw_kind``, the masks, then each mapped column.

    A column's value is NULL where its bit is clear, so a batch carries only what is sent.
    """
    masks = result.masks
    values = []
    for i, column in enumerate(result.columns):
        word, bit = _bit(i)
        values.append(
            f"CASE WHEN ({masks[word]} & {bit}) <> 0 THEN {quote_ident(column)} END"
            f" AS {quote_ident(column)}"
        )
    sql = (
        f"SELECT {KEY}, {KIND}, {', '.join(masks)}, {', '.join(values)} "
        f"FROM {quote_ident(result.table)}"
    )
    yield from engine.iter_arrow(render_sql(engine, sql), batch_size)


def changed_flags(batch: pa.RecordBatch, columns: Sequence[str]) -> dict[str, pa.BooleanArray]:
    """Decode the masks of a diff batch: per mapped column, which rows send it."""
    flags = {}
    for i, column in enumerate(columns):
        word, bit = _bit(i)
        mask = batch.column(f"hw_mask{word}")
        flags[column] = pc.not_equal(pc.bit_wise_and(mask, pa.scalar(bit, mask.type)), 0)
    return flags


@dataclass(frozen=True)
class DiffRecord:
    """One row to send: ``fields`` holds only what to send; a None value unsets it."""

    key: Any
    kind: str
    fields: dict[str, Any]


def decode_batch(
    batch: pa.RecordBatch, columns: Sequence[str]
) -> Iterator[tuple[Any, str, dict[str, Any], set[str]]]:
    """Per row of a diff batch: key, kind, every column's value, and the columns to send."""
    flags = {c: f.to_pylist() for c, f in changed_flags(batch, columns).items()}
    values = {c: batch.column(c).to_pylist() for c in columns}
    keys, kinds = batch.column(KEY).to_pylist(), batch.column(KIND).to_pylist()
    for row, (key, kind) in enumerate(zip(keys, kinds, strict=True)):
        yield key, kind, {c: values[c][row] for c in columns}, {c for c in columns if flags[c][row]}


def diff_records(batch: pa.RecordBatch, columns: Sequence[str]) -> list[DiffRecord]:
    """Turn a diff batch into records for building Braze objects (rows already diffed)."""
    return [
        DiffRecord(key, kind, {c: v for c, v in values.items() if c in send})
        for key, kind, values, send in decode_batch(batch, columns)
    ]
