"""Whether a PostgreSQL model's own SQL already guarantees its primary key is unique.

A sync reads such a model where it lives (``materialize_model(..., in_place=True)``):
no table of a million checked rows is written and indexed each run just to prove what
the source's unique index already enforces. The guarantee is only trusted when it is
plain: the SQL reads one table, row for row (no join, grouping, DISTINCT, LIMIT, set
operation, CTE or set-returning function: PostgreSQL's own plan must be a scan of that
table), and the key is one of its columns carrying a unique index of its own (not
partial, not on an expression). Anything else is checked the long way.
"""

from __future__ import annotations

import json

import sqlglot
from sqlglot import exp

from headwater.engines import SqlAlchemyEngine
from headwater.sources.base import quote_literal

# Plan nodes of a query that returns each row of one table at most once.
_ROW_FOR_ROW = {
    "Seq Scan",
    "Index Scan",
    "Index Only Scan",
    "Bitmap Heap Scan",
    "Bitmap Index Scan",
    "BitmapAnd",
    "BitmapOr",
    "Gather",
    "Sort",
    "Incremental Sort",
}

# What a SELECT may have and still return each row of its table at most once (``from_``
# is the name newer sqlglot versions give ``from``).
_PLAIN_CLAUSES = {"expressions", "from", "from_", "where", "order"}


def _key_source_column(select: exp.Select, key: str) -> str | None:
    """The table column the SELECT returns as ``key`` (matched as the model matches
    declared columns: exactly, else ignoring case), or None when it is computed."""
    named: list[tuple[str, exp.Expression]] = []
    star = False
    for item in select.expressions:
        if isinstance(item, exp.Star):
            star = True
            continue
        named.append((item.alias_or_name, item.unalias()))
    for match in (lambda n: n == key, lambda n: n.lower() == key.lower()):
        found = [e for n, e in named if match(n)]
        if len(found) > 1:
            return None
        if found:
            column = found[0]
            return column.name if isinstance(column, exp.Column) else None
    return key if star else None


def _plain_select(sql: str) -> tuple[exp.Table, exp.Select] | None:
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except Exception:
        return None
    if not isinstance(tree, exp.Select):
        return None
    if {name for name, value in tree.args.items() if value} - _PLAIN_CLAUSES:
        return None  # a join, grouping, DISTINCT, LIMIT, CTE, ...
    source = tree.args.get("from_") or tree.args.get("from")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
        return None
    return table, tree


def _scans_one_table(engine: SqlAlchemyEngine, sql: str) -> bool:
    """PostgreSQL's plan for ``sql`` is a scan of one relation (subplans in WHERE aside)."""
    plan = _plan(engine, sql)
    relations: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        if node.get("Parent Relationship") in ("InitPlan", "SubPlan"):
            continue
        if node["Node Type"] not in _ROW_FOR_ROW:
            return False
        if "Relation Name" in node:
            relations.add(f"{node.get('Schema', '')}.{node['Relation Name']}")
        stack.extend(node.get("Plans", []))
    return len(relations) == 1


def _plan(engine: SqlAlchemyEngine, sql: str) -> dict:
    raw = _first(engine, f"EXPLAIN (FORMAT JSON) {sql}")
    document = json.loads(raw) if isinstance(raw, str) else raw
    return document[0]["Plan"]


def _first(engine: SqlAlchemyEngine, sql: str):
    return engine.fetch_raw(sql)[0][0]


def source_keeps_key_unique(engine: SqlAlchemyEngine, sql: str, key: str) -> bool:
    """Whether every row ``sql`` returns has a distinct (or NULL) ``key``, because it reads
    one table row for row and ``key`` is a column with a unique index of its own. Runs
    inside a transaction of ``engine``; a statement that fails there aborts it."""
    plain = _plain_select(sql)
    if plain is None:
        return False
    table, select = plain
    column = _key_source_column(select, key)
    if column is None:
        return False
    relation = quote_literal(exp.Table(this=table.this, db=table.args.get("db")).sql("postgres"))
    unique = _first(
        engine,
        "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a "
        "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        f"WHERE i.indrelid = to_regclass({relation}) AND i.indisunique AND i.indisvalid "
        f"AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = {quote_literal(column)})",
    )
    return bool(unique) and _scans_one_table(engine, sql)
