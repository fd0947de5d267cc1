"""JSON files: ``json`` accepts an array of objects or one object per line; ``ndjson``
insists on lines, which DuckDB can split across threads."""

from __future__ import annotations

from headwater.sources.base import register_source
from headwater.sources.files import FileSource


@register_source("json", "ndjson")
class JsonSource(FileSource):
    def reader_sql(self, files_sql: str, *, sample_rows: int = -1) -> str:
        fmt = "newline_delimited" if self.config.type == "ndjson" else "auto"
        return (
            f"read_json({files_sql}, format='{fmt}', sample_size={int(sample_rows)}, "
            "union_by_name=true)"
        )
