"""What the console's pages read from the state store, each a bounded, indexed query, so
a page costs the same with a hundred runs or a hundred thousand (bench/console.py).

Runs of a sync are read newest first through ``ix_runs_sync_started``; a run's row errors
a page at a time through ``ix_run_row_errors_run`` (a search is a row-key prefix, which
``ix_run_row_errors_key`` answers, or an offending value's prefix: ``ix_run_row_errors_value``)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Index, bindparam, func, select, text

from headwater.runtime.inspector import REDACTED
from headwater.state import runs
from headwater.state.runs import run_row_errors

PAGE = 50
ERRORS_PAGE = 100
CHART_RUNS = 200
CSV_CHUNK = 5000
CHART_SERIES = (
    "added", "changed", "removed", "rejected", "failed", "data_points", "data_points_saved",
)  # fmt: skip

# A search by row key (or offending value) within one run reads only the matching rows.
key_index = Index("ix_run_row_errors_key", run_row_errors.c.run_id, run_row_errors.c.row_key)
value_index = Index("ix_run_row_errors_value", run_row_errors.c.run_id, run_row_errors.c.value)
SEARCHABLE = ("row_key", "value")


# The distinct sync names by hopping along ``ix_runs_sync_started`` (a loose index scan):
# one lookup per name instead of reading every run.
DISTINCT_SYNCS = text(
    "WITH RECURSIVE names(sync) AS ("
    " SELECT min(sync) FROM runs"
    " UNION ALL"
    " SELECT (SELECT min(sync) FROM runs WHERE runs.sync > names.sync)"
    " FROM names WHERE names.sync IS NOT NULL"
    ") SELECT sync FROM names"
)


def ensure_indexes(engine: Engine) -> None:
    """Stores made before the console lack the search index: add it (idempotent)."""
    key_index.create(engine, checkfirst=True)
    value_index.create(engine, checkfirst=True)


@dataclass(frozen=True)
class Page:
    items: list
    number: int
    has_next: bool


def job_names(engine: Engine, configured: list[str]) -> list[str]:
    """The project's syncs first, then any other job with runs in the store."""
    with engine.connect() as conn:
        found = [name for (name,) in conn.execute(DISTINCT_SYNCS) if name is not None]
    return configured + sorted(set(found) - set(configured))


_LAST_RUN = (
    select(runs.runs)
    .where(runs.runs.c.sync == bindparam("name"))
    .order_by(runs.runs.c.started_at.desc())
    .limit(1)
)


def last_runs(engine: Engine, names: list[str]) -> dict[str, runs.RunRecord]:
    """Each job's newest run: one indexed lookup per name (one statement, compiled once)."""
    out = {}
    with engine.connect() as conn:
        for name in names:
            row = conn.execute(_LAST_RUN, {"name": name}).mappings().first()
            if row is not None:
                out[name] = runs._record(row)
    return out


def runs_page(engine: Engine, sync: str, number: int = 1) -> Page:
    number = max(1, number)
    query = (
        select(runs.runs)
        .where(runs.runs.c.sync == sync)
        .order_by(runs.runs.c.started_at.desc())
        .limit(PAGE + 1)
        .offset((number - 1) * PAGE)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return Page([runs._record(r) for r in rows[:PAGE]], number, len(rows) > PAGE)


def chart_data(engine: Engine, sync: str, limit: int = CHART_RUNS) -> dict[str, list]:
    """uPlot's columns for the sync's latest runs, oldest first: x is the start time."""
    cols = [runs.runs.c.started_at, runs.runs.c.duration_seconds]
    cols += [runs.runs.c[name] for name in CHART_SERIES]
    query = (
        select(*cols)
        .where(runs.runs.c.sync == sync, runs.runs.c.status != runs.SKIPPED)
        .order_by(runs.runs.c.started_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    rows.reverse()
    data: dict[str, list] = {"x": [runs._aware(r[0]).timestamp() for r in rows]}
    data["duration_seconds"] = [r[1] for r in rows]
    for i, name in enumerate(CHART_SERIES):
        data[name] = [r[2 + i] for r in rows]
    return data


def _error_query(run_id: int, search: str, dialect: str = "sqlite", within: str = "row_key"):
    """A run's row errors, those whose ``within`` column (row key or value) starts with
    ``search`` when given: a range of ``ix_run_row_errors_key`` or ``_value``."""
    column = run_row_errors.c[within if within in SEARCHABLE else "row_key"]
    query = select(
        run_row_errors.c.id, run_row_errors.c.row_key, run_row_errors.c.field,
        run_row_errors.c.reason, run_row_errors.c.value,
    ).where(run_row_errors.c.run_id == run_id)  # fmt: skip
    if search:
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(column.like(escaped + "%", escape="\\"))
        if dialect == "sqlite":  # SQLite's LIKE ignores case, so no index: a range first
            following = ord(search[-1]) + 1
            upper = (
                None
                if 0xD800 <= following <= 0xDFFF or following > 0x10FFFF
                else (search[:-1] + chr(following))
            )
            query = query.where(column >= search)
            if upper is not None:
                query = query.where(column < upper)
    return query


def errors_page(
    engine: Engine, run_id: int, search: str = "", after: int = 0, within: str = "row_key"
) -> Page:
    """A page of row errors after error id ``after`` (keyset paging: page 9,000 costs what
    page 1 does); ``Page.number`` holds the id to continue after."""
    query = (
        _error_query(run_id, search, engine.dialect.name, within)
        .where(run_row_errors.c.id > after)
        .order_by(run_row_errors.c.id)
        .limit(ERRORS_PAGE + 1)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    shown = rows[:ERRORS_PAGE]
    items = [runs.RowErrorRecord(r.row_key, r.field, r.reason, r.value) for r in shown]
    return Page(items, shown[-1].id if shown else after, len(rows) > ERRORS_PAGE)


def errors_csv(
    engine: Engine,
    run_id: int,
    search: str = "",
    within: str = "row_key",
    secret: Callable[[str | None], bool] = lambda _field: False,
) -> Iterator[str]:
    """The run's row errors as CSV, read in chunks by id so any number streams out; the
    value of a field ``secret`` names is left out."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["row_key", "field", "reason", "value"])
    after = 0
    while True:
        query = (
            _error_query(run_id, search, engine.dialect.name, within)
            .where(run_row_errors.c.id > after)
            .order_by(run_row_errors.c.id)
            .limit(CSV_CHUNK)
        )
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            value = REDACTED if row.value is not None and secret(row.field) else row.value
            writer.writerow([_cell(row.row_key), _cell(row.field), _cell(row.reason), _cell(value)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < CSV_CHUNK:
            return
        after = rows[-1].id


def _cell(value: Any) -> str:
    """A value a spreadsheet will not run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def status_counts(engine: Engine) -> dict[str, int]:
    """Runs in progress, for the overview's health line (``ix_runs_status``)."""
    with engine.connect() as conn:
        running = conn.execute(
            select(func.count()).where(runs.runs.c.status == runs.RUNNING)
        ).scalar_one()
    return {"running": int(running)}
