"""Opening the embedded DuckDB warehouse the same way everywhere.

Extensions are never downloaded (the machine may be offline and a download at run time is
a supply-chain surprise): JSON, Parquet and ICU ship inside the wheel, and autoinstall is
switched off so anything else fails loudly instead. Time is UTC so a ``time`` column
without an offset means the same instant on every machine.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

DUCKDB_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": True,
    "TimeZone": "UTC",
}


def connect_duckdb(path: str | Path = ":memory:") -> duckdb.DuckDBPyConnection:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path), config=dict(DUCKDB_CONFIG))
