"""CSV files. Types are sniffed from a sample first; when a value deep in a big file does
not fit them, from every row, so one odd value turns its column into text instead of
failing the read (``files._copy_files``); the model's declared types then reject that
one row."""

from __future__ import annotations

from headwater.sources.base import quote_literal, register_source
from headwater.sources.files import FileSource


@register_source("csv")
class CsvSource(FileSource):
    def reader_sql(self, files_sql: str, *, sample_rows: int = -1) -> str:
        return (
            f"read_csv({files_sql}, delim={quote_literal(self.config.delimiter)}, "
            f"header={str(self.config.header).lower()}, sample_size={int(sample_rows)}, "
            "union_by_name=true, filename=false)"
        )
