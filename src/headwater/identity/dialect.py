"""The few places where DuckDB's SQL and PostgreSQL's part ways, for identity resolution.

The resolver's SQL is written once; what differs between the two engines it runs in is
kept here, in small helpers that take the engine (or its ``dialect``): replacing a temp
table, hashing values to an integer, regular expressions, taking the first value of a
group in an order, a timestamp literal, a query's column types. Everything else (joins,
GROUP BY, windows, UPDATE ... FROM, DISTINCT ON) reads the same in both.
"""

from __future__ import annotations

from datetime import datetime

from headwater.engines import Engine, quote_ident
from headwater.sources.base import quote_literal

DUCKDB = "duckdb"
POSTGRES = "postgres"


def is_pg(engine_or_dialect: Engine | str) -> bool:
    dialect = getattr(engine_or_dialect, "dialect", engine_or_dialect)
    return dialect == POSTGRES


def temp_table(engine: Engine, name: str, select: str) -> None:
    """Replace temp table ``name`` with the rows of ``select``. On PostgreSQL it is then
    analysed: autovacuum never looks at temp tables, and without statistics the planner
    joins a million rows as if they were a thousand."""
    if not is_pg(engine):
        engine.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {select}")
        return
    engine.execute(f"DROP TABLE IF EXISTS {name}")
    engine.execute(f"CREATE TEMP TABLE {name} AS {select}")
    engine.execute(f"ANALYZE {name}")


def empty_temp_table(engine: Engine, name: str, columns: str) -> None:
    """Replace temp table ``name`` with an empty one of ``columns`` (``a BIGINT, b VARCHAR``)."""
    engine.execute(f"DROP TABLE IF EXISTS {name}")
    engine.execute(f"CREATE TEMP TABLE {name} ({columns})")


def analyze(engine: Engine, name: str) -> None:
    """Fresh planner statistics after a table changed a lot (PostgreSQL; DuckDB keeps its own)."""
    if is_pg(engine):
        engine.execute(f"ANALYZE {name}")


def count(engine: Engine, table: str, where: str = "") -> int:
    return int(engine.fetch_all(f"SELECT COUNT(*) FROM {table} {where}")[0][0])


def hash_sql(dialect: str, *exprs: str) -> str:
    """A 64-bit integer hash of the values (NULL-safe: (NULL, 'a') and ('a', NULL) differ).
    Only ever compared with hashes made by the same engine."""
    if is_pg(dialect):
        return f"hashtextextended(CAST(ROW({', '.join(exprs)}) AS TEXT), 0)"
    return f"hash({', '.join(exprs)})"


def full_match(dialect: str, expr: str, pattern: str) -> str:
    """A SQL boolean: the whole of ``expr`` matches regular expression ``pattern``."""
    if is_pg(dialect):
        return f"({expr} ~ {quote_literal('^(?:' + pattern + ')$')})"
    return f"regexp_full_match({expr}, {quote_literal(pattern)})"


def search(dialect: str, expr: str, pattern: str) -> str:
    """A SQL boolean: ``pattern`` matches somewhere in ``expr``."""
    if is_pg(dialect):
        return f"({expr} ~ {quote_literal(pattern)})"
    return f"regexp_matches({expr}, {quote_literal(pattern)})"


def row_id(dialect: str) -> str:
    """The column naming a row's place in its table (valid until the row is written)."""
    return "ctid" if is_pg(dialect) else "rowid"


def rows_in(dialect: str, subquery: str) -> str:
    """A SQL boolean: the row is one of ``subquery``'s ``row_id`` values (PostgreSQL: a
    TID scan, which finds each row directly)."""
    if is_pg(dialect):
        return f"ctid = ANY (ARRAY({subquery}))"
    return f"rowid IN ({subquery})"


def timestamp_sql(when: datetime) -> str:
    """A TIMESTAMPTZ literal (no parameters: the SQL goes to either driver untouched)."""
    return f"CAST({quote_literal(when.isoformat())} AS TIMESTAMPTZ)"


def epoch_us(dialect: str, expr: str) -> str:
    """Microseconds since 1970 of a TIMESTAMPTZ, as BIGINT."""
    if is_pg(dialect):
        return f"CAST(floor(extract(epoch FROM {expr}) * 1000000) AS BIGINT)"
    return f"epoch_us({expr})"


def first_by(dialect: str, value: str, order: list[str], where: str) -> str:
    """The aggregate giving the ``value`` of the group's row that sorts first by ``order``
    (ascending, each term non-null) among rows where ``where`` holds. DuckDB: ARG_MIN on
    a struct (far faster there than an ordered aggregate); PostgreSQL: the first element
    of an ordered array_agg."""
    if is_pg(dialect):
        return f"(array_agg({value} ORDER BY {', '.join(order)}) FILTER (WHERE {where}))[1]"
    key = "struct_pack(" + ", ".join(f"k{i} := {p}" for i, p in enumerate(order)) + ")"
    return f"ARG_MIN({value}, {key}) FILTER (WHERE {where})"


def describe(engine: Engine, sql: str, view: str = "__hw_id_describe") -> dict[str, str]:
    """The columns of ``sql`` (name -> type as the engine names it), without running it."""
    if not is_pg(engine):
        return {row[0]: row[1] for row in engine.fetch_all(f"DESCRIBE SELECT * FROM ({sql}) AS s")}
    engine.execute(f"DROP VIEW IF EXISTS {quote_ident(view)}")
    engine.execute(f"CREATE TEMP VIEW {quote_ident(view)} AS SELECT * FROM ({sql}) AS s")
    rows = engine.fetch_all(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        f"WHERE a.attrelid = {quote_literal(quote_ident(view))}::regclass AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum"
    )
    engine.execute(f"DROP VIEW {quote_ident(view)}")
    return {name: type_ for name, type_ in rows}
