"""Parquet files carry their own types; several files are unified by column name."""

from __future__ import annotations

from headwater.sources.base import register_source
from headwater.sources.files import FileSource


@register_source("parquet")
class ParquetSource(FileSource):
    def reader_sql(self, files_sql: str, *, sample_rows: int = -1) -> str:
        return f"read_parquet({files_sql}, union_by_name=true)"
