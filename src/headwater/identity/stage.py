"""Every source's records in one temp table, and their raw key values beside it.

``__hw_id_records`` holds one row per record: a dense integer ``_rid`` (the graph is built on
integers, which joins and compares far faster than text), the source, the record id, when
it changed, the source's priority and the golden columns typed as declared.
``__hw_id_raw`` holds one row per (record, key, raw value) (``stage_raw``). ``_fp`` is a
record's fingerprint, which an incremental run compares with the last run's, and ``_rh``
the hash of its source and id, which the kept state is keyed by.

The record id doubles as a hidden key (``__record``), so the same record listed twice is
one person, and a record without an id is refused with its row number. Only ids listed
more than once (by ``_rh``) get it: a value on one record links nobody, and at 10M records
the key would be a fifth of all values.
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.config import ColumnSpec, IdentityConfig, ModelConfig, Project
from headwater.engines import DuckDBEngine, Engine
from headwater.errors import FatalError
from headwater.identity.dialect import count, describe, hash_sql, is_pg, temp_table
from headwater.identity.place import source_sql
from headwater.models.checks import PostgresDialect
from headwater.models.model import materialize_model, read_tables
from headwater.sources.base import open_source, quote_ident, quote_literal
from headwater.sources.files import FileSource

RECORDS = "__hw_id_records"
RID_SOURCE_STRIDE = 1 << 40  # rows per source before record numbers would overlap
RAW = "__hw_id_raw"
RECORD_KEY = "__record"
SQL_TYPES = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
    "time": "TIMESTAMPTZ",
}


@dataclass
class Staged:
    records: int
    missing_ids: list[tuple[str, int]]  # (source, row number) without a record id
    missing_id_count: int


def _register_inputs(project: Project, engine: Engine, model_name: str, sql: str) -> None:
    if not isinstance(engine, DuckDBEngine):
        return  # in PostgreSQL the sources are the database's own tables (source_sql)
    con = engine.conn
    for name in sorted(read_tables(sql)):
        if name in project.sources:
            source = open_source(project, name)
            if isinstance(source, FileSource):
                source.register(con)  # a view: each identity source reads it once
            else:
                source.register(con)
        elif name in project.models and name != model_name:
            inner = materialize_model(project, name, engine)
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS "
                f"SELECT * FROM {quote_ident(inner.table)}"
            )


def _expr(column_or_sql: str, columns: dict[str, str]) -> str:
    """A source's column by name, else the text as a SQL expression over its columns."""
    return quote_ident(column_or_sql) if column_or_sql in columns else f"({column_or_sql})"


def _text(column_or_sql: str, columns: dict[str, str]) -> str:
    """The value as text. A JSON column (ndjson with mixed types) gives its string
    unquoted (``"a@b.com"`` -> ``a@b.com``), and objects and arrays as their JSON text."""
    expr = _expr(column_or_sql, columns)
    if columns.get(column_or_sql) == "JSON":
        return f"COALESCE(json_extract_string({expr}, '$'), CAST({expr} AS VARCHAR))"
    if columns.get(column_or_sql) in ("json", "jsonb"):  # PostgreSQL
        return f"({expr} #>> '{{}}')"
    return f"CAST({expr} AS VARCHAR)"


def _typed(engine: Engine, expr: str, source_type: str | None, type_: str) -> str:
    """``expr`` as the declared ``type_``, NULL when it does not convert: DuckDB's
    TRY_CAST, or in PostgreSQL the checks models use (no cast there may fail a run)."""
    if not is_pg(engine):
        return f"TRY_CAST({expr} AS {SQL_TYPES[type_]})"
    if source_type is None:  # an expression: typed from its text
        expr, source_type = f"CAST({expr} AS TEXT)", "text"
    return PostgresDialect().typed(expr, source_type, ColumnSpec(type=type_))


def stage_records(project: Project, engine: Engine, model_name: str, model: ModelConfig) -> Staged:
    """Fill ``RECORDS`` and ``RAW`` from the identity sources (temp tables)."""
    identity = model.identity
    assert identity is not None
    pg = is_pg(engine)
    golden = {c: s for c, s in model.columns.items() if c != model.primary_key}
    parts = []
    for index, (name, source) in enumerate(identity.sources.items()):
        _register_inputs(project, engine, model_name, source.sql)
        where = f"model {model_name!r}, source {name!r}"
        try:
            sql = source_sql(project, engine, source.sql)
            columns = describe(engine, sql)
        except Exception as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise FatalError(f"{where}: its SQL failed: {detail}") from None
        select = [
            f"{quote_literal(name)} AS _source",
            f"{index} AS _source_index",
            f"{int(source.priority)} AS _priority",
            f"{_text(source.record_id, columns)} AS _record_id",
            (
                _typed(
                    engine,
                    _expr(source.updated_at, columns),
                    columns.get(source.updated_at),
                    "time",
                )
                + " AS _updated_at"
                if source.updated_at
                else "CAST(NULL AS TIMESTAMPTZ) AS _updated_at"
            ),
        ]
        for i, key in enumerate(identity.keys):
            expr = (
                _text(source.keys[key], columns) if key in source.keys else "CAST(NULL AS VARCHAR)"
            )
            select.append(f"{expr} AS __hw_k{i}")
        for column, spec in golden.items():
            type_ = SQL_TYPES.get(spec.type)
            if column in identity.keys:
                ref = "NULL"  # the cleaned key value: normalize.golden_columns_sql
            elif column in columns:
                ref = _text(column, columns) if spec.type == "string" else quote_ident(column)
            elif column in source.keys:
                ref = _expr(source.keys[column], columns)
            else:
                ref = "NULL"
            name = quote_ident(column)
            if type_ is None:
                select.append(f"{ref} AS {name}")
            elif ref == "NULL":
                type_ = "DOUBLE PRECISION" if pg and type_ == "DOUBLE" else type_
                select.append(f"CAST(NULL AS {type_}) AS {name}")
            elif pg and column in columns:
                select.append(f"{_typed(engine, ref, columns[column], spec.type)} AS {name}")
            else:
                select.append(f"{_typed(engine, ref, None, spec.type)} AS {name}")
        # A record's number: its source's index in the high bits, its row in the low ones;
        # no sort over all records is needed to number them. Its fingerprint covers every
        # value the resolver reads from it, so an unchanged fingerprint is an unchanged record.
        hashed = ["_record_id", "_updated_at"] + [f"__hw_k{i}" for i in range(len(identity.keys))]
        hashed += [quote_ident(column) for column in golden]
        fp = hash_sql(engine.dialect, *hashed)
        rh = hash_sql(engine.dialect, "_source", "_record_id")
        parts.append(
            f"SELECT *, CAST({index} AS BIGINT) * {RID_SOURCE_STRIDE} + _row AS _rid, "
            f"{fp} AS _fp, {rh} AS _rh FROM "
            f"(SELECT {', '.join(select)}, ROW_NUMBER() OVER () AS _row FROM ({sql}) AS s) AS n"
        )
    # Every part lists the same columns in the same order; DuckDB still matches by name.
    union = " UNION ALL " if pg else " UNION ALL BY NAME "
    try:
        temp_table(engine, "__hw_id_all", union.join(parts))
    except Exception as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise FatalError(f"model {model_name!r}: reading its sources failed: {detail}") from None
    missing = sorted(
        engine.fetch_all(
            "DELETE FROM __hw_id_all WHERE _record_id IS NULL OR trim(_record_id) = '' "
            "RETURNING _source_index, _row, _source"
        )
    )
    missing_count = len(missing)
    missing = [(source, row) for _, row, source in missing[:1000]]
    engine.execute(f"DROP TABLE IF EXISTS {RECORDS}")
    engine.execute(f"ALTER TABLE __hw_id_all RENAME TO {RECORDS}")
    records = count(engine, RECORDS)
    return Staged(records=records, missing_ids=missing, missing_id_count=int(missing_count))


def stage_raw(engine: Engine, identity: IdentityConfig) -> None:
    """Fill ``RAW`` from the records in ``RECORDS`` (in an incremental run, the changed
    ones alone: they are the only ones cleaned)."""
    unpivot = [
        f"SELECT _rid, {quote_literal(key)} AS key, __hw_k{i} AS raw FROM {RECORDS} "
        f"WHERE __hw_k{i} IS NOT NULL AND trim(__hw_k{i}) <> ''"
        for i, key in enumerate(identity.keys)
    ]
    unpivot.append(
        f"SELECT _rid, '{RECORD_KEY}' AS key, _source || ':' || _record_id AS raw FROM {RECORDS} "
        f"WHERE _rh IN (SELECT _rh FROM {RECORDS} GROUP BY _rh HAVING COUNT(*) > 1)"
    )
    temp_table(engine, RAW, " UNION ALL ".join(unpivot))
    # The texts live on in RAW: their columns go (dropping a column costs nothing in DuckDB
    # or PostgreSQL, and frees DuckDB's memory).
    for i in range(len(identity.keys)):
        engine.execute(f"ALTER TABLE {RECORDS} DROP COLUMN __hw_k{i}")
