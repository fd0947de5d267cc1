"""One identity run: stage, clean, link, limit, name, pick; then publish the tables at once.

Everything runs as SQL inside the engine holding the data (``place.py``): the DuckDB
warehouse, or the PostgreSQL database every source of the model reads; Python only
cleans the key values SQL cannot (see ``normalize.py``). The published tables replace
the previous run's in one transaction, so a reader sees either the last run or this one,
never half of each; a failed or stopped run publishes nothing and the previous tables
stay.

Tables (``<model>_`` prefix): ``persons``, ``links`` (record -> person), ``golden``,
``refused`` (limit-rule audit), ``rejected`` (bad key values), ``merges`` (appended).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from headwater.config import ModelConfig, Project
from headwater.engines import DuckDBEngine, Engine, quote_ident, quote_table
from headwater.errors import FatalError, HeadwaterError, RowError
from headwater.identity import delta, memory
from headwater.identity.dialect import (
    count,
    hash_sql,
    is_pg,
    row_id,
    rows_in,
    temp_table,
    timestamp_sql,
)
from headwater.identity.golden import golden_select
from headwater.identity.ids import MERGED, PERSON, assign_person_ids
from headwater.identity.limits import EDGES, LABELS, PRESPLIT, REFUSED, resolve_components
from headwater.identity.normalize import (
    BAD,
    VALUES,
    golden_columns_sql,
    key_joins_sql,
    normalize_keys,
)
from headwater.identity.place import (
    base_name,
    identity_model,
    open_identity_engine,
    runs_in,
    table_base,
)
from headwater.identity.stage import RAW, RECORD_KEY, RECORDS, stage_raw, stage_records
from headwater.models.checks import PostgresDialect
from headwater.models.model import (
    MAX_REJECTION_DETAILS,
    ModelResult,
    materialize_model,
    model_table_name,
)
from headwater.sources.base import quote_literal
from headwater.state import runs
from headwater.state.db import open_state

log = logging.getLogger(__name__)
RUN_KIND = "identity"
OUTPUTS = ("persons", "links", "golden", "refused", "rejected", "merges")
STOPPED = "stopped before the end; nothing was published, the previous tables stay"


@dataclass
class IdentityReport:
    """What one resolution did. Counts are of this run's result."""

    model: str
    run_id: int | None = None
    status: str = "running"
    error: str | None = None
    records: int = 0
    persons: int = 0
    new_persons: int = 0
    merges: int = 0
    refused: int = 0  # values a limit rule kept from linking
    rejected: int = 0  # key values that failed cleaning, and records without an id
    cleaned: int = 0  # raw key texts cleaned for the first time (the rest were known)
    rounds: int = 0  # connected-components rounds
    mode: str = "full"  # or "incremental": only what a change can reach was resolved again
    engine: str = "duckdb"  # where it ran: the warehouse, or "postgres" (its sources' database)
    changed: int = 0  # records new, edited or removed since the last run (incremental)
    touched: int = 0  # records resolved again
    seconds: float = 0.0
    tables: dict[str, str] = field(default_factory=dict)  # output -> table (maybe schema.table)
    errors: list[RowError] = field(default_factory=list)  # the first problems found

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "errors"}
        data["errors"] = [{"row": e.row, "field": e.field, "reason": e.reason} for e in self.errors]
        return data


def output_table(model_name: str, output: str) -> str:
    """The table of one output (``persons``, ``links``, ``golden``...); ``model_name``
    may be ``schema.model`` (``place.table_base``)."""
    return f"{model_name}_{output}"


class _Stopped(Exception):
    pass


def _publish(
    engine: Engine,
    model_name: str,
    model: ModelConfig,
    run_id: int | None,
    now: datetime,
    generation: int | None,
    step: Callable[[str], None],
) -> None:
    """Write this run's tables and state in one transaction: replace them (a full run,
    ``generation`` None) or replace the rows of what was resolved again (incremental).
    ``model_name`` is the tables' prefix (``schema.model`` maybe). ``step`` names the
    writing once the golden records are picked."""
    t = {name: quote_table(output_table(model_name, name)) for name in OUTPUTS}
    # Each record with its component's label (an integer: cheaper to group and join on
    # than the person id) and only the columns the outputs read; the person ids are
    # joined on once per person (golden, persons) or once per record (links).
    keep = ["_rid", "_source", "_source_index", "_priority", "_record_id", "_updated_at"]
    keep = [f"r.{c}" for c in keep] + golden_columns_sql(model, "r")
    temp_table(
        engine,
        "__hw_id_rp",
        f"SELECT l.lbl AS __hw_lbl, {', '.join(keep)} FROM {RECORDS} AS r "
        f"JOIN {LABELS} AS l ON l._rid = r._rid {key_joins_sql(model, 'r')}",
    )
    for column in model.columns:  # read from __hw_id_rp from now on: memory
        if column != model.primary_key:
            engine.execute(f"ALTER TABLE {RECORDS} DROP COLUMN {quote_ident(column)}")
    golden_columns = [quote_ident(c) for c in model.columns if c != model.primary_key]
    temp_table(
        engine,
        "__hw_id_golden",
        f"SELECT p.person_id, {', '.join(f'g.{c}' for c in golden_columns)} FROM "
        f"({golden_select(model, '__hw_id_rp', '__hw_lbl', engine.dialect)}) AS g "
        f"JOIN {PERSON} AS p ON p.lbl = g.__hw_lbl",
    )
    when = timestamp_sql(now)
    run = f"CAST({int(run_id)} AS BIGINT)" if run_id is not None else "CAST(NULL AS BIGINT)"
    # Only an id listed more than once can repeat a link, and only such records carry the
    # hidden record key (stage_raw): they alone go through DISTINCT, not 10M rows.
    twice = f"(SELECT _rid FROM {VALUES} WHERE key = '{RECORD_KEY}')"
    link = "__hw_lbl, _source AS source, _record_id AS record_id, _updated_at AS updated_at"
    links = (
        f"SELECT p.person_id, r.source, r.record_id, r.updated_at FROM (SELECT {link} "
        f"FROM __hw_id_rp WHERE _rid NOT IN {twice} UNION ALL SELECT DISTINCT {link} "
        f"FROM __hw_id_rp WHERE _rid IN {twice}) AS r JOIN {PERSON} AS p ON p.lbl = r.__hw_lbl"
    )
    persons = (
        "SELECT p.person_id, c.records, c.sources, p.first_seen_at, "
        f"{when} AS resolved_at FROM (SELECT __hw_lbl, COUNT(*) AS records, "
        "COUNT(DISTINCT _source_index) AS sources FROM __hw_id_rp GROUP BY __hw_lbl) AS c "
        f"JOIN {PERSON} AS p ON p.lbl = c.__hw_lbl"
    )
    refused = (
        f"SELECT key, value, records, rule, reason, {run} AS run_id, {when} AS refused_at "
        f"FROM {REFUSED} ORDER BY key, value"
    )
    rejected = (
        "SELECT r._source AS source, r._record_id AS record_id, b.key, b.raw AS raw_value, "
        f"b.reason FROM {BAD} AS b JOIN {RECORDS} AS r ON r._rid = b._rid ORDER BY b._rid, b.key"
    )
    full = {
        "links": links,
        "persons": persons,
        "golden": "SELECT * FROM __hw_id_golden",
        "refused": refused,
        "rejected": rejected,
    }
    pg = is_pg(engine)
    step("writing the tables")
    if generation is None and pg:
        # Written beside the live tables first; the transaction only swaps names, so a
        # reader waits for a rename, not for the run's writes.
        drafts = {output_table(model_name, name): sql for name, sql in full.items()}
        drafts |= memory.full_state(engine, model_name, model, 1)
        drafted = {table: _draft(engine, table, sql) for table, sql in drafts.items()}
        golden = drafted[output_table(model_name, "golden")]
        engine.execute(f"CREATE UNIQUE INDEX ON {golden} (person_id)")  # a sync's diff walks it
    elif generation is not None:  # before the transaction: reads only, one pass over links
        rh = hash_sql(engine.dialect, "source", "record_id")
        temp_table(
            engine,
            "__hw_id_oldl",
            f"SELECT {row_id(engine.dialect)} AS __hw_row, person_id FROM {t['links']} "
            f"WHERE {rh} IN (SELECT rh FROM {delta.TOUCHED})",
        )
        temp_table(engine, "__hw_id_oldp", "SELECT DISTINCT person_id FROM __hw_id_oldl")
    with engine.transaction():
        if generation is None and pg:
            for table, draft in drafted.items():
                engine.execute(f"DROP TABLE IF EXISTS {quote_table(table)}")
                bare = table.rpartition(".")[2]
                engine.execute(f"ALTER TABLE {draft} RENAME TO {quote_ident(bare)}")
        elif generation is None:
            for name, sql in full.items():
                engine.execute(f"CREATE OR REPLACE TABLE {t[name]} AS {sql}")
            memory.write_full(engine, model_name, model, 1)
        else:
            old = rows_in(engine.dialect, "SELECT __hw_row FROM __hw_id_oldl")
            engine.execute(f"DELETE FROM {t['links']} WHERE {old}")
            for name in ("persons", "golden"):
                engine.execute(
                    f"DELETE FROM {t[name]} WHERE person_id IN (SELECT person_id FROM __hw_id_oldp)"
                )
            engine.execute(
                f"DELETE FROM {t['refused']} AS o USING {delta.WANTED} AS x "
                "WHERE o.key = x.key AND o.value = x.value"
            )
            engine.execute(
                f"DELETE FROM {t['rejected']} WHERE {rh} IN (SELECT rh FROM {delta.DELTA})"
            )
            golden_columns = [c for c in model.columns if c != model.primary_key]
            columns = {
                "links": ["person_id", "source", "record_id", "updated_at"],
                "persons": ["person_id", "records", "sources", "first_seen_at", "resolved_at"],
                "golden": ["person_id", *golden_columns],
                "refused": ["key", "value", "records", "rule", "reason", "run_id", "refused_at"],
                "rejected": ["source", "record_id", "key", "raw_value", "reason"],
            }
            for name, sql in full.items():  # by name: the SELECTs list them in this order
                listed = ", ".join(quote_ident(c) for c in columns[name])
                engine.execute(f"INSERT INTO {t[name]} ({listed}) {sql}")
            memory.write_patch(
                engine,
                model_name,
                model,
                generation + 1,
                touched=delta.TOUCHED,
                delta=delta.DELTA,
                changed_rids=delta.CHANGED,
            )
        engine.execute(
            f"CREATE TABLE IF NOT EXISTS {t['merges']} (survivor VARCHAR, merged VARCHAR, "
            "merged_at TIMESTAMPTZ, run_id BIGINT)"
        )
        engine.execute(
            f"INSERT INTO {t['merges']} SELECT survivor, merged, {when}, {run} "
            f"FROM {MERGED} ORDER BY survivor, merged"
        )
    for table in ("__hw_id_golden", "__hw_id_rp", "__hw_id_oldp", "__hw_id_oldl"):
        engine.execute(f"DROP TABLE IF EXISTS {table}")


def _draft(engine: Engine, table: str, sql: str) -> str:
    """A new version of ``table`` (PostgreSQL), written beside it under another name."""
    draft = quote_table(f"{table}__hw_next")
    engine.execute(f"DROP TABLE IF EXISTS {draft}")
    engine.execute(f"CREATE TABLE {draft} AS {sql}")
    return draft


@contextmanager
def _memory_limit(engine: Engine, limit: str | None) -> Iterator[None]:
    """DuckDB's ``memory_limit`` for one run, then the engine's own again. Beyond it DuckDB
    spills to its temp directory (``<warehouse>.tmp`` beside a warehouse file) instead of
    growing. PostgreSQL keeps to its own settings (``work_mem``...): nothing changes."""
    if not limit or not isinstance(engine, DuckDBEngine):
        yield
        return
    con = engine.conn
    setting = "SELECT current_setting('memory_limit')"
    before = con.execute(setting).fetchall()[0][0]
    con.execute("RESET memory_limit")
    # Its default is given back as such: read back as text, it would come back rounded.
    own = before != con.execute(setting).fetchall()[0][0]
    con.execute("SET memory_limit = $limit", {"limit": limit.strip()})
    try:
        yield
    finally:
        if own:
            con.execute("SET memory_limit = $limit", {"limit": before})
        else:
            con.execute("RESET memory_limit")


def _details(engine: Engine, model_name: str, limit: int) -> list[RowError]:
    """The first bad values and refusals, read from the published tables (an incremental
    run's own temp tables hold only what it resolved again)."""
    rejected = quote_table(output_table(model_name, "rejected"))
    refused = quote_table(output_table(model_name, "refused"))
    rows = engine.fetch_all(
        f"SELECT source || ':' || record_id, key, reason || ': ' || left(raw_value, 100) "
        f"FROM {rejected} ORDER BY source, record_id, key LIMIT {int(limit)}"
    )
    errors = [RowError(reason, row=row, field=key) for row, key, reason in rows]
    left = limit - len(errors)
    if left > 0:
        rows = engine.fetch_all(
            f"SELECT key, value, rule || ': ' || reason FROM {refused} "
            f"ORDER BY records DESC, key, value LIMIT {int(left)}"
        )
        errors += [
            RowError(f"refused ({reason})", row=value, field=key) for key, value, reason in rows
        ]
    return errors


def run_resolution(
    project: Project,
    model_name: str,
    engine: Engine,
    *,
    run_id: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    full: bool = False,
) -> IdentityReport:
    """Resolve ``model_name`` inside ``engine`` (the warehouse, or the PostgreSQL database
    of its sources) and publish its tables: incrementally when the last run's state allows
    it, else (or when ``full``) in full. Raises HeadwaterError on a user's
    mistake and ``_Stopped`` when ``stop`` is set."""
    model = identity_model(project, model_name)
    identity = model.identity
    assert identity is not None
    report = IdentityReport(model=model_name, run_id=run_id)

    def step(name: str) -> None:
        if stop is not None and stop.is_set():
            raise _Stopped()
        if progress is not None:
            progress(name)

    now = clock()
    pg = is_pg(engine)
    if pg:
        for statement in PostgresDialect.setup:  # the safe casts staging uses
            engine.execute(statement)
        # Every statement here joins whole tables: a nested loop is only ever chosen from
        # a row estimate gone wrong (temp tables), and then costs minutes, not seconds.
        engine.execute("SET enable_nestloop = off")  # reset by ``resolve``
    report.engine = engine.dialect
    base = table_base(engine, model_name, model)  # the tables' prefix: schema.model maybe
    if pg:  # two runs would write the same drafts: one at a time per model and database
        lock = quote_literal(f"headwater identity {base}")
        if not engine.fetch_all(f"SELECT pg_try_advisory_lock(hashtext({lock}))")[0][0]:
            raise FatalError(
                f"model {model_name!r} is being resolved by another run in this database; "
                "try again when it ends"
            )
    step("reading sources")
    staged = stage_records(project, engine, model_name, model)
    report.records = staged.records
    outputs = [output_table(base, name) for name in OUTPUTS if name != "merges"]
    generation = None if full else memory.last_generation(engine, base, model, outputs)
    report.mode = "full" if generation is None else "incremental"
    if generation is not None:
        step("finding changed records")
        report.changed = delta.find_changes(engine, base)
    step("cleaning keys")
    stage_raw(engine, identity)
    report.cleaned = normalize_keys(engine, base, identity)
    engine.execute(f"DROP TABLE {RAW}")  # staging tables go once read: memory
    counts = None
    report.touched = report.records
    if generation is not None:
        report.touched = delta.narrow_to_touched(engine, base, identity)
        counts = delta.COUNTS
    step("linking records")
    report.rounds = resolve_components(engine, identity, counts)
    step("naming persons")
    report.new_persons, report.merges = assign_person_ids(
        engine,
        output_table(base, "links"),
        output_table(base, "persons"),
        f"{base}__hw_ids",
        now,
    )
    step("picking golden records")
    _publish(engine, base, model, run_id, now, generation, step)

    def published(output: str) -> int:
        return count(engine, quote_table(output_table(base, output)))

    report.persons = published("persons")
    report.refused = published("refused")
    report.rejected = published("rejected") + staged.missing_id_count
    report.errors = [
        RowError("no record id", row=f"row {row} of {source}", field="record_id")
        for source, row in staged.missing_ids[:MAX_REJECTION_DETAILS]
    ]
    report.errors += _details(engine, base, MAX_REJECTION_DETAILS - len(report.errors))
    report.tables = {name: output_table(base, name) for name in OUTPUTS}
    for table in (
        RECORDS,
        RAW,
        VALUES,
        BAD,
        LABELS,
        PRESPLIT,
        EDGES,
        REFUSED,
        PERSON,
        MERGED,
        *delta.TEMP,
    ):
        engine.execute(f"DROP TABLE IF EXISTS {table}")
    return report


def resolve(
    project: Project,
    model_name: str,
    *,
    stop: threading.Event | None = None,
    progress: Callable[[str], None] | None = None,
    engine: Engine | None = None,
    full: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> IdentityReport:
    """Resolve identity model ``model_name`` into persons and publish its tables where it
    runs (the warehouse, or the PostgreSQL database holding all its sources: see
    ``place.py``); record the run in the state store (kind ``identity``).

    Incremental when the last run left its state with the same configuration: only the
    records a change can reach are resolved again, with the result a full run would give.
    ``full`` resolves every record again.

    Key texts cleaned by earlier runs are not cleaned again. ``stop`` (set by a stopping
    ``serve``) ends the run between steps without publishing; it is recorded as
    interrupted. Errors a user causes end the run as failed with the reason in ``error``;
    nothing is raised for them. ``engine``: an open engine to run in (left open), used
    when it is where the model runs (``place.runs_in``); else the model's own is opened.
    """
    identity = identity_model(project, model_name).identity
    assert identity is not None
    started = time.monotonic()
    state = open_state(project.state_url)
    runs.mark_interrupted(state)
    run_id = runs.start_run(state, model_name, kind=RUN_KIND)
    report = IdentityReport(model=model_name, run_id=run_id)
    own = engine is None or not runs_in(engine, project, model_name)
    if own:
        engine = None
    status = None
    try:
        if engine is None:
            engine = open_identity_engine(project, model_name)
        with _memory_limit(engine, identity.memory_limit):
            report = run_resolution(
                project,
                model_name,
                engine,
                run_id=run_id,
                stop=stop,
                progress=progress,
                clock=clock,
                full=full,
            )
        if report.errors:
            runs.add_row_errors(state, run_id, report.errors)
    except _Stopped:
        report.error, status = STOPPED, runs.INTERRUPTED
    except HeadwaterError as exc:
        report.error = str(exc)
    except Exception as exc:  # an engine failure: record it, keep the traceback in the log
        log.exception("identity %s failed", model_name)
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        report.seconds = time.monotonic() - started
        report.status = runs.finish_run(
            state,
            run_id,
            status=status,
            error=report.error,
            added=report.new_persons,
            changed=report.merges,
            unchanged=max(report.persons - report.new_persons, 0),
            rejected=report.rejected,
        )
        if own and engine is not None:
            engine.close()
        elif engine is not None and is_pg(engine):
            with contextlib.suppress(Exception):  # the caller's session, as it was
                engine.execute("RESET enable_nestloop")
                engine.execute("SELECT pg_advisory_unlock_all()")
        state.dispose()
    return report


def run_job(project: Project, name: str, *, stop: threading.Event | None = None) -> IdentityReport:
    """The scheduler's entry point: ``resolve`` (the report has run_id, status, error)."""
    return resolve(project, name, stop=stop)


def materialize_any(
    project: Project, model_name: str, *, in_place: bool = False, publish: bool = True
) -> ModelResult:
    """A model's rows ready for a sync: for an identity model, resolve it and return its
    golden records (primary key ``person_id``, the declared columns); for any other model,
    exactly ``headwater.models.materialize_model(project, model_name, in_place=...)``. The
    caller closes ``result.engine``. A failed resolution raises HeadwaterError with its
    reason. ``publish`` False (a dry run, which must change nothing): the golden records
    the last resolution published, as they are; FatalError when there are none yet."""
    model = project.models.get(model_name)
    if model is None or model.identity is None:
        return materialize_model(project, model_name, in_place=in_place)
    engine = open_identity_engine(project, model_name)
    try:
        table = output_table(base_name(engine, model_name, model), "golden")
        if publish:
            report = resolve(project, model_name, engine=engine)
            if report.error:
                raise FatalError(f"identity model {model_name!r}: {report.error}")
            persons = report.persons
        elif engine.table_exists(table):
            persons = count(engine, quote_table(table))
        else:
            raise FatalError(
                f"identity model {model_name!r} has not been resolved yet, and a dry run "
                f"changes nothing: run `headwater resolve {model_name}` first"
            )
        relation_sql = None
        if "." in table:  # in a schema: a sync names its model's table unqualified
            view = model_table_name(model_name)
            relation_sql = f"SELECT * FROM {quote_table(table)}"  # for its other connections
            engine.execute(f"DROP VIEW IF EXISTS {quote_ident(view)}")
            engine.execute(f"CREATE TEMP VIEW {quote_ident(view)} AS {relation_sql}")
            table = view
    except BaseException:
        engine.close()
        raise
    return ModelResult(
        model=model_name,
        table=table,
        row_count=persons,
        rejected_count=0,
        rejected=[],
        engine=engine,
        primary_key=model.primary_key,
        columns={name: spec.type for name, spec in model.columns.items()},
        relation_sql=relation_sql,
    )
