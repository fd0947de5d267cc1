"""What every source is: a named relation that can show up in DuckDB and stream Arrow.

Two methods are the whole contract. ``register`` makes the source a temporary view (or
table) named after it inside a DuckDB connection, which is how file models read it
without copying. ``batches`` streams the same rows as Arrow, which is what the shared
contract suite checks and what a caller outside DuckDB uses.

Sources register themselves by their config ``type``; ``open_source`` builds one from a
project. Heavy drivers (asyncssh, SQLAlchemy dialects) are imported inside the classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from headwater.errors import ConfigError

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from headwater.config import Project

DEFAULT_BATCH_ROWS = 10_000


class Source(Protocol):
    name: str

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Create a temporary view or table called ``name`` in ``con``."""

    def batches(self, size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream every row as Arrow record batches; at least one (maybe empty) batch, so a
        caller always learns the schema."""


SourceFactory = Callable[[str, object, "Project"], Source]
SOURCE_TYPES: dict[str, SourceFactory] = {}


def register_source(*types: str) -> Callable[[SourceFactory], SourceFactory]:
    def decorate(factory: SourceFactory) -> SourceFactory:
        for kind in types:
            SOURCE_TYPES[kind] = factory
        return factory

    return decorate


def open_source(project: Project, name: str) -> Source:
    """Build the source called ``name`` from the project's configuration."""
    # Importing the modules fills the registry; they are small and lazy about drivers.
    from headwater.sources import csv, json, parquet, sql  # noqa: F401

    try:
        config = project.sources[name]
    except KeyError:
        raise ConfigError(f"no source named {name!r}") from None
    return SOURCE_TYPES[config.type](name, config, project)


def quote_ident(name: str) -> str:
    """Double-quote an identifier for DuckDB / standard SQL."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
