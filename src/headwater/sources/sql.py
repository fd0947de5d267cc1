"""A database reached through SQLAlchemy (SQLite, PostgreSQL, any dialect installed).

Models over a SQL source normally run inside that database (see ``models.model``), so
this class is mostly about the other case: a model in the DuckDB warehouse that also
reads a table from a database. Then the rows travel once, as Arrow batches typed from
the table's declared column types rather than guessed per batch.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from headwater.errors import ConfigError, FatalError
from headwater.sources.base import DEFAULT_BATCH_ROWS, quote_ident, register_source

if TYPE_CHECKING:
    import duckdb
    import sqlalchemy as sa

    from headwater.config import Project, SqlSourceConfig


def database_url(project: Project, config: SqlSourceConfig) -> str:
    """The SQLAlchemy URL, with relative SQLite paths under the project and plain
    ``postgresql://`` routed to psycopg 3."""
    from headwater.state.db import normalise_url

    return normalise_url(project.resolve_url(config.url.get_secret_value()))


def redacted(url: str) -> str:
    from headwater.state.db import display_url

    return display_url(url)


def create_source_engine(name: str, project: Project, config: SqlSourceConfig) -> sa.Engine:
    import sqlalchemy as sa

    url = database_url(project, config)
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except Exception as exc:
        raise ConfigError(
            f"source {name!r}: cannot use database URL {redacted(url)}: {type(exc).__name__}: {exc}"
        ) from None


def connection_error(name: str, url: str, exc: Exception) -> FatalError:
    from headwater.state.db import unreachable

    return unreachable(f"source {name!r}", url, exc)


def _arrow_type(sql_type: Any) -> pa.DataType | None:
    import sqlalchemy as sa

    checks: list[tuple[type, pa.DataType]] = [
        (sa.Boolean, pa.bool_()),
        (sa.Integer, pa.int64()),
        (sa.Float, pa.float64()),
        (sa.Numeric, pa.float64()),
        (sa.DateTime, pa.timestamp("us", tz="UTC")),
        (sa.Date, pa.date32()),
        (sa.String, pa.string()),
    ]
    for cls, arrow in checks:
        if isinstance(sql_type, cls):
            if cls is sa.DateTime and not getattr(sql_type, "timezone", False):
                return pa.timestamp("us")
            return arrow
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC)
    return value


@register_source("sql")
class SqlSource:
    def __init__(self, name: str, config: SqlSourceConfig, project: Project) -> None:
        self.name = name
        self.config = config
        self.project = project
        self.url = database_url(project, config)

    def engine(self) -> sa.Engine:
        return create_source_engine(self.name, self.project, self.config)

    def relation_sql(self) -> str:
        """The source as a FROM item in its own database: a table or a subquery."""
        if self.config.table:
            return ".".join(quote_ident(p) for p in self.config.table.split("."))
        if self.config.query:
            return f"({self.config.query})"
        raise ConfigError(
            f"source {self.name!r} has no table or query, so it cannot be read as one "
            f"relation; set `source: {self.name}` on the model to run it inside the database"
        )

    def batches(self, size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        import sqlalchemy as sa

        engine = self.engine()
        try:
            try:
                conn = engine.connect()
            except sa.exc.SQLAlchemyError as exc:
                raise connection_error(self.name, self.url, exc) from None
            with conn:
                statement = self._statement(conn)
                try:
                    result = conn.execution_options(stream_results=True).execute(statement)
                except sa.exc.SQLAlchemyError as exc:
                    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                    raise FatalError(f"source {self.name!r}: query failed: {detail}") from None
                names = list(result.keys())
                declared = [_arrow_type(c.type) for c in getattr(statement, "selected_columns", [])]
                types: list[pa.DataType | None] = declared or [None] * len(names)
                yielded = False
                for rows in result.partitions(size):
                    columns = list(zip(*rows, strict=True))
                    arrays = []
                    for i, values in enumerate(columns):
                        arr = pa.array([_plain(v) for v in values], type=types[i])
                        if types[i] is None:
                            # Later batches follow the first batch's type; all-NULL is text.
                            types[i] = arr.type if arr.type != pa.null() else pa.string()
                            arr = arr.cast(types[i])
                        arrays.append(arr)
                    yield pa.RecordBatch.from_arrays(arrays, names=names)
                    yielded = True
                if not yielded:
                    empty = [pa.array([], type=t or pa.string()) for t in types]
                    yield pa.RecordBatch.from_arrays(empty, names=names)
        finally:
            engine.dispose()

    def _statement(self, conn: sa.Connection) -> Any:
        import sqlalchemy as sa

        if self.config.table:
            schema, _, table = self.config.table.rpartition(".")
            try:
                reflected = sa.Table(
                    table, sa.MetaData(), schema=schema or None, autoload_with=conn
                )
            except sa.exc.NoSuchTableError:
                raise FatalError(
                    f"source {self.name!r}: table {self.config.table!r} does not exist"
                ) from None
            return sa.select(reflected)
        return sa.text(f"SELECT * FROM {self.relation_sql()} AS q")

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Copy the relation into a DuckDB temporary table (rows travel once, as Arrow)."""
        self.relation_sql()  # fails early, with advice, when there is no single relation
        batches = self.batches()
        first = next(batches, None)
        if first is None:
            raise FatalError(f"source {self.name!r}: returned no result")
        reader = pa.RecordBatchReader.from_batches(first.schema, _chain(first, batches))
        view = f"__hw_arrow_{self.name}"
        con.register(view, reader)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {quote_ident(self.name)} AS "
                f"SELECT * FROM {quote_ident(view)}"
            )
        finally:
            con.unregister(view)


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    for batch in rest:
        yield batch.cast(first.schema) if batch.schema != first.schema else batch
