"""The part every file source shares: find the files, then hand them to a DuckDB reader.

A path is a file, a glob (``data/orders/*.parquet``) or an ``sftp://`` URL. Remote files
are first copied into the project cache (see ``sftp.py``); from there on local and remote
sources are the same. Empty files are skipped rather than handed to DuckDB, which cannot
sniff a schema from zero bytes; a source whose files are all empty has no rows.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from headwater.errors import FatalError
from headwater.sources.base import DEFAULT_BATCH_ROWS, quote_ident, quote_literal
from headwater.sources.sftp import fetch_sftp_files

if TYPE_CHECKING:
    import duckdb

    from headwater.config import Project, _FileSourceBase


_WIDE_INTEGERS = {"HUGEINT", "UHUGEINT", "UBIGINT"}


class FileSource:
    """Base of CSV, JSON and Parquet sources; subclasses only say how DuckDB reads them."""

    def __init__(self, name: str, config: _FileSourceBase, project: Project) -> None:
        self.name = name
        self.config = config
        self.project = project

    def reader_sql(self, files_sql: str, *, sample_rows: int = -1) -> str:
        """A DuckDB table function call over the list literal ``files_sql``; types are
        guessed from ``sample_rows`` rows (-1: all of them) where the format has no own."""
        raise NotImplementedError

    def files(self) -> list[Path]:
        """The local files behind this source (fetched first when remote)."""
        if self.config.is_remote:
            return fetch_sftp_files(self.name, self.config, self.project)
        pattern = self.project.resolve_path(self.config.path)
        if glob.has_magic(str(pattern)):
            found = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True))
            found = [p for p in found if p.is_file()]
            if not found:
                raise FatalError(f"source {self.name!r}: no file matches {self.config.path}")
            return found
        if not pattern.is_file():
            raise FatalError(f"source {self.name!r}: file not found: {self.config.path}")
        return [pattern]

    def register(self, con: duckdb.DuckDBPyConnection, *, materialize: bool = False) -> None:
        """Make the source a view named after it. ``materialize`` reads the files into a
        temp table first: DuckDB sniffs a reader's types again each time a query over it
        is planned (every row of a CSV, see csv.py), so a model that plans several
        statements over a source reads its files once this way, not once per statement."""
        files = [p for p in self.files() if p.stat().st_size > 0]
        listing = "[" + ", ".join(quote_literal(str(p)) for p in files) + "]"
        body = f"SELECT * FROM {self.reader_sql(listing)}"
        if not files:
            body = "SELECT NULL::VARCHAR AS _empty WHERE false"
        view = quote_ident(self.name)
        try:
            if materialize:
                copy = quote_ident(f"__hw_file_{self.name}")
                if files:
                    _copy_files(con, copy, self.reader_sql, listing)
                else:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE {copy} AS {body}")
                body = f"SELECT * FROM {copy}"
            con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS {body}")
            # Integers sniffed per file can widen to HUGEINT/UBIGINT across files (10 is
            # unsigned, -7 is not); bring them back to BIGINT, which every engine has.
            wide = [
                name
                for name, type_, *_ in con.execute(f"DESCRIBE {view}").fetchall()
                if type_ in _WIDE_INTEGERS
            ]
            if wide:
                casts = ", ".join(
                    f"CAST({quote_ident(c)} AS BIGINT) AS {quote_ident(c)}" for c in wide
                )
                con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * REPLACE ({casts}) FROM ({body})"
                )
        except Exception as exc:  # duckdb raises its own error classes
            raise FatalError(
                f"source {self.name!r}: cannot read {self.config.path}: {exc}"
            ) from None

    def batches(self, size: int = DEFAULT_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        from headwater.warehouse import connect_duckdb

        con = connect_duckdb(":memory:")
        try:
            self.register(con)
            try:
                reader = con.sql(f"SELECT * FROM {quote_ident(self.name)}").to_arrow_reader(size)
            except Exception as exc:  # duckdb raises its own error classes
                raise FatalError(
                    f"source {self.name!r}: cannot read {self.config.path}: {exc}"
                ) from None
            yielded = False
            for batch in reader:
                yielded = True
                yield batch
            if not yielded:
                yield pa.RecordBatch.from_pylist([], schema=reader.schema)
        finally:
            con.close()


SNIFF_SAMPLE_ROWS = 20_480  # DuckDB's own default sample


def _copy_files(con: duckdb.DuckDBPyConnection, table: str, reader, listing: str) -> None:
    """Read the files into ``table`` at the reader's own speed: types are guessed from a
    sample, and only when a value later in the files does not fit them (the read fails)
    are they guessed again from every row, where one odd value makes its column text.
    Guessing from every row reads the files twice; most files never need it."""
    import duckdb

    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {table} AS "
            f"SELECT * FROM {reader(listing, sample_rows=SNIFF_SAMPLE_ROWS)}"
        )
    except duckdb.Error:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM {reader(listing)}")
