"""The landing directory: where exports put their tables, as Parquet files.

Why Parquet files and not a table in the DuckDB warehouse: DuckDB lets one process write
its database file, so tables ``serve`` keeps writing (scheduled exports, Currents events)
could not be read by a user's ``duckdb`` shell, notebook or BI tool at the same time.
Parquet files can: every file is written under a temporary name beside its final one, made
durable, then renamed over it (``os.replace``, atomic on one file system). A reader sees
the old file or the new one, never half of one, and a reader that already opened the old
file keeps reading it. DuckDB reads them in place (``read_parquet``), and so do pandas,
Polars, Spark and every warehouse's external tables.

Layout, under ``landing:`` (default ``.headwater/landing``)::

    segments/segments.parquet              one row per exported segment
    segments/<segment id>/members.parquet  its members, replaced by each run
    segments/<segment id>/history.parquet  (segment, user, first_seen, last_seen)
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

TMP_SUFFIX = ".tmp"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def safe_part(text: str, limit: int = 100) -> str:
    """``text`` as one path component: letters, digits, ``_.-`` kept, the rest as ``_``;
    never empty, never ``.``/``..``, at most ``limit`` characters."""
    part = _SAFE.sub("_", text)[:limit].strip(".")
    return part or "_"


def table_name(text: str, prefix: str = "") -> str:
    """A lower-case SQL identifier from a free name (``VIP Users!`` -> ``vip_users``)."""
    name = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "unnamed"
    return prefix + name


@contextlib.contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer to fill; removed if the block fails.
    ``publish`` then puts it in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
    try:
        yield temp
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def publish(staged_files: Mapping[Path, Path]) -> None:
    """Make each staged file durable, then rename it over its final path (``final:
    staged``). Renames come last and together, so a failure before them leaves every
    previous file in place."""
    for temp in staged_files.values():
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
    for final, temp in staged_files.items():
        os.replace(temp, final)
    for directory in {final.parent for final in staged_files}:
        fsync_dir(directory)


def discard(staged_files: Mapping[Path, Path]) -> None:
    for temp in staged_files.values():
        temp.unlink(missing_ok=True)


def fsync_file(path: Path) -> None:
    """Flush a written file to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fsync_file(directory)


def write_parquet_atomic(table, path: Path) -> None:
    """Write an Arrow table to ``path`` so readers see the old file or the whole new one."""
    import pyarrow.parquet as pq

    with staged(path) as temp:
        pq.write_table(table, temp)
        publish({path: temp})


def sql_literal(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_sql(name: str, pattern: str | Path, *, union_by_name: bool = False) -> str:
    """``CREATE OR REPLACE VIEW name AS SELECT * FROM read_parquet(pattern)``: a DuckDB view
    over landed files (a glob reads many, ``union_by_name`` lines their columns up)."""
    options = ", union_by_name = true" if union_by_name else ""
    return (
        f"CREATE OR REPLACE VIEW {sql_ident(name)} AS SELECT * FROM "
        f"read_parquet({sql_literal(str(pattern))}{options})"
    )


def create_views(conn, views: Mapping[str, str]) -> list[str]:
    """Run ``views`` (name -> ``view_sql``) on a DuckDB connection; returns their names."""
    for statement in views.values():
        conn.execute(statement)
    return list(views)
