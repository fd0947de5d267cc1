"""CSV files. Types are sniffed from every row (not a sample) so one odd value deep in a
big file turns the column into text instead of failing the read halfway; the model's
declared types then reject that one row."""

from __future__ import annotations

from headwater.sources.base import quote_literal, register_source
from headwater.sources.files import FileSource


@register_source("csv")
class CsvSource(FileSource):
    def reader_sql(self, files_sql: str) -> str:
        return (
            f"read_csv({files_sql}, delim={quote_literal(self.config.delimiter)}, "
            f"header={str(self.config.header).lower()}, sample_size=-1, "
            "union_by_name=true, filename=false)"
        )
