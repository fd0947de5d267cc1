"""Sources: files (CSV, JSON, Parquet; local or SFTP) and SQL databases, by config ``type``."""

from headwater.sources import csv, json, parquet, sql  # noqa: F401  (fill the registry)
from headwater.sources.base import SOURCE_TYPES, Source, open_source, register_source

__all__ = ["SOURCE_TYPES", "Source", "open_source", "register_source"]
