"""Where a model's data lives: embedded DuckDB, or the user's database through SQLAlchemy.

The sync engine diffs a model inside the engine that already holds it, so it needs the
same few verbs from both: run SQL, read results as Arrow (whole or streamed), bulk-load
Arrow, and translate SQL written once in DuckDB's dialect. SQL in this project is written
in DuckDB's dialect and passed through ``transpile`` before it runs elsewhere.

Parameters use ``:name`` placeholders with a dict, on every engine.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlglot

from headwater.errors import ConfigError, FatalError

ArrowData = pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch] | pa.RecordBatchReader
DEFAULT_BATCH_ROWS = 50_000
log = logging.getLogger(__name__)
_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def quote_ident(name: str) -> str:
    """Quote a column or table name; the same double quotes work in all three dialects."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(name: str) -> str:
    """Quote ``table`` or ``schema.table`` (the form ``table_exists`` takes) part by part."""
    return ".".join(quote_ident(part) for part in name.split("."))


def _as_batches(data: ArrowData) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches(max_chunksize=DEFAULT_BATCH_ROWS))
    if isinstance(data, pa.RecordBatch):
        return data.schema, iter([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    batches = iter(data)
    first = next(batches, None)
    if first is None:
        raise FatalError("load_arrow needs a schema: got an empty iterable of batches")
    return first.schema, _chain(first, batches)


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


class Engine:
    """The verbs the diff and snapshot code need; one subclass per kind of database."""

    dialect: str

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        raise NotImplementedError

    def fetch_all(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        raise NotImplementedError

    def fetch_arrow(self, sql: str) -> pa.Table:
        raise NotImplementedError

    def iter_arrow(
        self, sql: str, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        raise NotImplementedError

    def load_arrow(self, table_name: str, data: ArrowData, *, replace: bool = True) -> int:
        raise NotImplementedError

    def table_exists(self, name: str) -> bool:
        raise NotImplementedError

    @contextmanager
    def transaction(self) -> Iterator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    @property
    def in_transaction(self) -> bool:
        """True inside ``transaction()``: statements join it instead of committing alone."""
        return bool(self._depth)

    _depth = 0

    def close(self) -> None:
        raise NotImplementedError

    def transpile(self, sql: str) -> str:
        """Rewrite SQL written for DuckDB into this engine's dialect."""
        if self.dialect == "duckdb":
            return sql
        return ";\n".join(sqlglot.transpile(sql, read="duckdb", write=self.dialect))

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DuckDBEngine(Engine):
    """Embedded DuckDB: the default warehouse, a file or ``:memory:``."""

    dialect = "duckdb"

    def __init__(self, path: str = ":memory:") -> None:
        import duckdb

        self.path = path
        self.conn = duckdb.connect(path)
        self._depth = 0

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        if params:
            self.conn.execute(_NAMED_PARAM.sub(r"$\1", sql), params).fetchall()
        else:
            self.conn.execute(sql).fetchall()

    def fetch_all(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        if params:
            return self.conn.execute(_NAMED_PARAM.sub(r"$\1", sql), params).fetchall()
        return self.conn.execute(sql).fetchall()

    def fetch_arrow(self, sql: str) -> pa.Table:
        return self.conn.sql(sql).to_arrow_table()

    def iter_arrow(
        self, sql: str, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        # A second cursor: a DuckDB connection refuses new statements while a result streams,
        # and the caller commits snapshot batches while it reads the diff.
        cursor = self.conn.cursor()
        try:
            yield from cursor.sql(sql).to_arrow_reader(batch_size)
        finally:
            cursor.close()

    def load_arrow(self, table_name: str, data: ArrowData, *, replace: bool = True) -> int:
        schema, batches = _as_batches(data)
        target = quote_table(table_name)
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        view = f"__hw_load_{id(reader)}"
        self.conn.register(view, reader)
        try:
            if replace or not self.table_exists(table_name):
                verb = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE"
                self.execute(f"{verb} {target} AS SELECT * FROM {view}")
            else:
                self.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {view}")
        finally:
            self.conn.unregister(view)
        return self.fetch_all(f"SELECT count(*) FROM {target}")[0][0]

    def table_exists(self, name: str) -> bool:
        schema, _, table = name.rpartition(".")
        sql = "SELECT count(*) FROM duckdb_tables() WHERE table_name = $t"
        params: dict[str, Any] = {"t": table}
        if schema:
            sql += " AND schema_name = $s"
            params["s"] = schema
        views = "SELECT count(*) FROM duckdb_views() WHERE view_name = $t"
        found = self.conn.execute(sql, params).fetchall()[0][0]
        return bool(found or self.conn.execute(views, {"t": table}).fetchall()[0][0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            raise FatalError("nested transactions are not supported")
        self.execute("BEGIN TRANSACTION")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self.execute("ROLLBACK")
            raise
        self._depth -= 1
        self.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


_PG_TYPES = {
    pa.types.is_boolean: "boolean",
    pa.types.is_int8: "smallint",
    pa.types.is_int16: "smallint",
    pa.types.is_int32: "integer",
    pa.types.is_integer: "bigint",
    pa.types.is_floating: "double precision",
    pa.types.is_decimal: "numeric",
    pa.types.is_date: "date",
    pa.types.is_time: "time",
    pa.types.is_string: "text",
    pa.types.is_large_string: "text",
    pa.types.is_string_view: "text",
    pa.types.is_null: "text",
}


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _pg_type(t.value_type) + "[]"
    for check, name in _PG_TYPES.items():
        if check(t):
            return name
    raise FatalError(f"cannot load Arrow type {t} into PostgreSQL")


def _pg_array_literal(arr: pa.Array) -> pa.Array:
    """Render a list column as PostgreSQL array literals ({"a","b"}) with Arrow kernels."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    # A sliced list array keeps its parent's values: cut them and rebase the offsets.
    first, last = arr.offsets[0].as_py(), arr.offsets[-1].as_py()
    offsets = pc.subtract(arr.offsets, pa.scalar(first, arr.offsets.type))
    values = pc.cast(arr.values.slice(first, last - first), pa.string())
    values = pc.replace_substring(values, "\\", "\\\\")
    values = pc.replace_substring(values, '"', '\\"')
    quoted = pc.binary_join_element_wise('"', values, '"', "")
    quoted = pc.fill_null(quoted, "NULL")
    lists = pa.ListArray.from_arrays(offsets, quoted, mask=arr.is_null())
    return pc.binary_join_element_wise("{", pc.binary_join(lists, ","), "}", "")


def _sqlite_values(column: pa.Array) -> list:
    """SQLite has no arrays or timestamps: store lists as JSON text, times as ISO text."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return [None if v is None else json.dumps(v, default=str) for v in column.to_pylist()]
    if pa.types.is_temporal(column.type):
        return [None if v is None else v.isoformat() for v in column.to_pylist()]
    return column.to_pylist()


PG_SESSION_SETTINGS = {"work_mem": "256MB", "temp_buffers": "256MB"}


class SqlAlchemyEngine(Engine):
    """A database reached through SQLAlchemy; PostgreSQL is tested, SQLite works.

    One connection is held for the engine's life, so temporary tables and transactions
    behave as they do on DuckDB.
    """

    def __init__(self, url: str) -> None:
        from headwater.state.db import create_state_engine

        self.sa_engine = create_state_engine(url)
        name = self.sa_engine.dialect.name
        self.dialect = {"postgresql": "postgres"}.get(name, name)
        self.conn = self.sa_engine.connect()
        self._depth = 0
        if self.dialect == "postgres":
            # Row hashes hash the text form of rows; fix the one setting that changes it.
            self.execute("SET TIME ZONE 'UTC'")
            # Models, diffs and snapshot commits sort, hash and write whole tables once a
            # run: give this one session the memory to do it without spilling to disk.
            # (temp_buffers may only change before the session's first temporary table.)
            for setting, value in PG_SESSION_SETTINGS.items():
                self.execute(f"SET {setting} = '{value}'")

    def _run(self, sql: str, params: dict[str, Any] | None = None) -> tuple[list[str], list[tuple]]:
        """Run one statement; return its column names and rows (empty if it returns none).

        Without parameters the SQL goes to the driver untouched, so a ``%`` in it
        (``LIKE '%@%'``) is not taken for a placeholder.
        """
        if params:
            from sqlalchemy import text

            result = self.conn.execute(text(sql), params)
            if not result.returns_rows:
                return [], []
            return list(result.keys()), [tuple(r) for r in result.fetchall()]
        cursor = self.conn.connection.driver_connection.cursor()
        try:
            cursor.execute(sql)
            if cursor.description is None:
                return [], []
            return [d[0] for d in cursor.description], [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def fetch_raw(self, sql: str) -> list[tuple]:
        """Run one statement inside the current transaction, straight to the driver (no
        placeholders), and return its rows."""
        return self._run(sql)[1]

    @contextmanager
    def _unit(self) -> Iterator[None]:
        if self._depth:
            yield
            return
        with self.transaction():
            yield

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        with self._unit():
            self._run(sql, params)

    def fetch_all(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        with self._unit():
            return self._run(sql, params)[1]

    def fetch_arrow(self, sql: str) -> pa.Table:
        with self._unit():
            names, rows = self._run(sql)
        return pa.table({n: pa.array([r[i] for r in rows]) for i, n in enumerate(names)})

    def iter_arrow(
        self, sql: str, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        # A separate connection with a server-side cursor: rows stream without holding the
        # whole result, and the main connection stays free for snapshot commits.
        with self.sa_engine.connect() as conn:
            raw = conn.connection.driver_connection
            named = {"name": "hw_stream"} if self.dialect == "postgres" else {}
            cursor = raw.cursor(**named)
            try:
                cursor.execute(sql)
                names = [d[0] for d in cursor.description]
                while rows := cursor.fetchmany(batch_size):
                    columns = [pa.array([r[i] for r in rows]) for i in range(len(names))]
                    yield pa.RecordBatch.from_arrays(columns, names=names)
            finally:
                cursor.close()
                conn.rollback()

    def load_arrow(self, table_name: str, data: ArrowData, *, replace: bool = True) -> int:
        schema, batches = _as_batches(data)
        target = quote_table(table_name)
        with self._unit():
            if replace:
                self._run(f"DROP TABLE IF EXISTS {target}")
            if replace or not self.table_exists(table_name):
                cols = ", ".join(
                    f"{quote_ident(f.name)} {self._column_type(f.type)}" for f in schema
                )
                self._run(f"CREATE TABLE {target} ({cols})")
            for batch in batches:
                if batch.num_rows:
                    self._load_batch(target, batch)
            return self._run(f"SELECT count(*) FROM {target}")[1][0][0]

    def fetch_beside(self, sql: str, setup: Sequence[str] = ()) -> Callable[[], list[tuple]]:
        """Start ``sql`` on a second connection that sees exactly what this transaction
        sees, and return the function that waits for its rows: the statements the caller
        runs meanwhile go on beside it, on another core.

        PostgreSQL, inside a REPEATABLE READ transaction: the second connection imports
        the transaction's exported snapshot (``setup`` runs there first: the session's
        temporary functions), so both read one state of the database; the transaction
        must stay open until the rows are taken. If that connection fails (none to be
        had, say), ``sql`` runs here when the rows are taken: the same rows, later.
        Anywhere else ``sql`` runs here, now."""
        if self.dialect != "postgres" or not self._depth:
            rows = self.fetch_all(sql)
            return lambda: rows
        beside = self._beside(sql, setup, lambda cursor: [tuple(r) for r in cursor.fetchall()])

        def rows() -> list[tuple]:
            try:
                return beside()
            except Exception:
                log.warning("a second connection failed; its read runs here", exc_info=True)
                return self._run(sql)[1]

        return rows

    def copy_beside(self, sql: str, setup: Sequence[str] = ()) -> Callable[[], IO[bytes]]:
        """``fetch_beside`` for PostgreSQL only, the rows in COPY's text form (which reads
        back into a table exactly, whatever the types) in a temporary file; see
        ``copy_in``."""

        def spool(cursor) -> IO[bytes]:
            spooled = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 (returned)
            with cursor.copy(f"COPY ({sql}) TO STDOUT") as copy:
                for block in copy:
                    spooled.write(block)
            spooled.seek(0)
            return spooled

        return self._beside(None, setup, spool)

    def copy_in(self, table_name: str, rows: IO[bytes]) -> None:
        """Append rows in COPY's text form (``copy_beside``) to ``table_name``."""
        cursor = self.conn.connection.driver_connection.cursor()
        with self._unit(), cursor.copy(f"COPY {quote_table(table_name)} FROM STDIN") as copy:
            while block := rows.read(1 << 20):
                copy.write(block)

    def _beside(self, sql: str | None, setup: Sequence[str], take: Callable[[Any], Any]):
        snapshot = self._run("SELECT pg_export_snapshot()")[1][0][0]
        outcome: list = []

        def work() -> None:
            try:
                with self.sa_engine.connect() as conn:
                    raw = conn.connection.driver_connection
                    try:
                        with raw.cursor() as cursor:
                            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                            cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                            cursor.execute("SET LOCAL TIME ZONE 'UTC'")
                            for setting, value in PG_SESSION_SETTINGS.items():
                                if setting != "temp_buffers":
                                    cursor.execute(f"SET LOCAL {setting} = '{value}'")
                            for statement in setup:
                                cursor.execute(statement)
                            if sql is not None:
                                cursor.execute(sql)
                            outcome.append(take(cursor))
                    finally:
                        raw.rollback()
            except BaseException as exc:  # raised in the caller when it takes the rows
                outcome.append(exc)

        worker = threading.Thread(target=work, name="beside", daemon=True)
        worker.start()

        def result():
            worker.join()
            if isinstance(outcome[0], BaseException):
                raise outcome[0]
            return outcome[0]

        return result

    def copy_arrow(self, table_name: str, data: ArrowData) -> None:
        """Append ``data`` to the existing ``table_name`` (a temporary table too): no
        catalog look-up, no count, each value converted to the column's own type."""
        _schema, batches = _as_batches(data)
        target = quote_table(table_name)
        with self._unit():
            for batch in batches:
                if batch.num_rows:
                    self._load_batch(target, batch)

    def _column_type(self, t: pa.DataType) -> str:
        if self.dialect == "postgres":
            return _pg_type(t)
        if pa.types.is_integer(t) or pa.types.is_boolean(t):
            return "INTEGER"
        if pa.types.is_floating(t):
            return "REAL"
        return "TEXT"

    def _load_batch(self, target: str, batch: pa.RecordBatch) -> None:
        cols = ", ".join(quote_ident(n) for n in batch.schema.names)
        if self.dialect != "postgres":
            marks = ", ".join("?" for _ in batch.schema.names)
            rows = list(zip(*(_sqlite_values(c) for c in batch.columns), strict=True))
            self.conn.exec_driver_sql(f"INSERT INTO {target} ({cols}) VALUES ({marks})", rows)
            return
        arrays = [
            _pg_array_literal(c)
            if pa.types.is_list(c.type) or pa.types.is_large_list(c.type)
            else c
            for c in batch.columns
        ]
        buffer = io.BytesIO()
        pacsv.write_csv(
            pa.RecordBatch.from_arrays(arrays, names=batch.schema.names),
            buffer,
            pacsv.WriteOptions(include_header=False),
        )
        cursor = self.conn.connection.driver_connection.cursor()
        with cursor.copy(f"COPY {target} ({cols}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())

    def table_exists(self, name: str) -> bool:
        from sqlalchemy import inspect

        schema, _, table = name.rpartition(".")
        with self._unit():
            return inspect(self.conn).has_table(table, schema=schema or None)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            raise FatalError("nested transactions are not supported")
        self._depth += 1
        try:
            with self.conn.begin():
                yield
        finally:
            self._depth -= 1

    def close(self) -> None:
        self.conn.close()
        self.sa_engine.dispose()


def open_engine(url: str) -> Engine:
    """Open the engine a URL names: duckdb:///path, duckdb:///:memory:, postgresql://, sqlite:///."""
    if url.startswith("duckdb://"):
        path = url.removeprefix("duckdb://").removeprefix("/") or ":memory:"
        return DuckDBEngine(path)
    if url.startswith(("postgresql", "postgres://", "sqlite")):
        return SqlAlchemyEngine(url)
    raise ConfigError(f"unsupported warehouse URL scheme: {url.split('://', 1)[0]!r}")
