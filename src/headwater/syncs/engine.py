"""One sync run: materialise the model, diff it in its engine, send only what changed,
and commit each row to the snapshot only once Braze accepted it.

The order of things is what makes a run safe to kill at any point: the snapshot is the
record of what Braze has, and it only moves forward after Braze said yes. A run killed
mid-way leaves the rest of its rows uncommitted, so the next run sends them again; its run
record, left ``running``, is shown as interrupted once nothing heartbeats it any more.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pyarrow as pa

from headwater.allocations import fewer_collections
from headwater.braze.client import BrazeClient, ItemResult, TrackItem
from headwater.braze.datapoints import FREE_FIELDS, attribute_data_points, data_points
from headwater.braze.errors import BrazeRejectedError, BrazeUnavailableError
from headwater.braze.limits import MAX_IDS_PER_REQUEST
from headwater.chunks import chunks
from headwater.config import Project, SyncConfig
from headwater.engines import Engine, quote_ident
from headwater.errors import ConfigError, FatalError, HeadwaterError, RowError
from headwater.identity import materialize_any
from headwater.models.model import ModelResult, reason_without_value
from headwater.runtime.clients import destination_client
from headwater.runtime.committer import SPACING, BatchCommitter
from headwater.runtime.inspector import REDACTED, Redactor
from headwater.state import runs
from headwater.state.db import open_state
from headwater.syncs import merges
from headwater.syncs.diff import (
    ADDED,
    BITS_PER_MASK,
    CHANGED,
    REMOVED,
    UNCHANGED,
    DiffResult,
    compute_diff,
)
from headwater.syncs.mapping import (
    attributes_object,
    event_object,
    purchase_object,
    unset_object,
)
from headwater.syncs.objects import AttributeBuilder, shaped_columns, time_columns
from headwater.syncs.snapshot import KEY, KIND, commit_accepted, snapshot_table

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
PREVIEW_ROWS = 5
_SECRETS = Redactor()  # the field names whose values are secret
SHOWN_ERRORS = 20  # row errors kept on the report for display; the run record keeps all
# An attribute sync of millions of rows commits its snapshot at most about this many times
# by row count: each commit joins the whole diff, so a 50,000-row cap made a 10M-row run
# commit 200 times. (A crash resends at most one commit's rows; resending an attribute
# changes nothing in Braze. Event and purchase syncs keep the cap: those would repeat.)
COMMITS_PER_RUN = 50
DIFF_BATCH_ROWS = 10_000
KIND_OF_SYNC = {"attributes": "attributes", "events": "events", "purchases": "purchases"}

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class SyncReport:
    """What a run did, for the CLI, the demo and tests."""

    sync: str
    run_id: int | None
    status: str
    dry_run: bool = False
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    rejected: int = 0
    failed: int = 0
    sent: int = 0
    requests: int = 0
    data_points: int = 0
    full_data_points: int = 0  # what sending every row in full would have cost
    seconds: float = 0.0
    error: str | None = None
    preview: list[dict] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # the first SHOWN_ERRORS, to display

    def counts(self) -> dict[str, int]:
        names = ("added", "changed", "removed", "unchanged", "rejected", "failed", "sent")
        return {n: getattr(self, n) for n in (*names, "requests", "data_points")}

    @property
    def data_points_saved(self) -> int:
        """What the diff saved: a full resend's cost less what was spent (as ``headwater
        sync`` prints it); none for a run that did not finish its work."""
        if self.error is not None:
            return 0
        return max(self.full_data_points - self.data_points, 0)


@dataclass
class _Planned:
    """A row turned into what to do with it."""

    key: object
    kind: str  # added | changed | removed
    item: TrackItem | None = None  # send this to /users/track
    delete: dict | None = None  # or delete this user
    commit_only: bool = False  # or nothing to send: just move the snapshot


def _sync(project: Project, name: str) -> SyncConfig:
    try:
        return project.syncs[name]
    except KeyError:
        known = ", ".join(sorted(project.syncs)) or "none"
        raise ConfigError(f"no sync named {name!r} (syncs: {known})") from None


def _diff_batches(
    engine: Engine, sync: SyncConfig, diff: DiffResult, times: set[str]
) -> Iterator[pa.RecordBatch]:
    """Stream the diff: key, kind, masks and the values to send, with the identifier even
    for removed rows (they are gone from the model, so it comes from the snapshot) and
    times already formatted by the engine."""
    masks = ", ".join(f"d.{m}" for m in diff.masks)
    snapshot = quote_ident(snapshot_table(diff.sync_name))
    if engine.dialect == "postgres":
        # Only rows without an identifier (removed ones) look the snapshot up, by its key:
        # a join made PostgreSQL hash the diff and read the whole snapshot before the first
        # row (0.6 s at 2M rows).
        cols = shaped_columns(sync, diff.columns, engine.dialect, times, snapshot)
        joined = ""
    else:
        cols = shaped_columns(sync, diff.columns, engine.dialect, times)
        joined = f"LEFT JOIN {snapshot} AS s ON s.{KEY} = d.{KEY} "
    sql = (
        f"SELECT d.{KEY}, d.{KIND}, {masks}, {', '.join(cols)} "
        f"FROM {quote_ident(diff.table)} AS d {joined}"
    )
    if not diff.full:
        sql += f" WHERE d.{KIND} IN ('added', 'changed', 'removed')"
    yield from engine.iter_arrow(sql, DIFF_BATCH_ROWS)


def _row_at(
    columns: tuple[str, ...], values: list[list], masks: list[list], i: int, key, kind: str
) -> dict:
    """One diff row as the row-at-a-time path reads it."""
    row = {c: values[j][i] for j, c in enumerate(columns)}
    row["__key"], row["__kind"] = key, kind
    row["__changed"] = {
        c
        for j, c in enumerate(columns)
        if (masks[j // BITS_PER_MASK][i] or 0) >> (j % BITS_PER_MASK) & 1
    }
    return row


def _plan_row(sync: SyncConfig, row: dict, now: datetime) -> _Planned:
    """Decide what one diff row becomes; a bad row raises RowError."""
    key, kind = row["__key"], row["__kind"]
    planned = _Planned(key, kind)
    if sync.type != "attributes":
        if kind != ADDED:
            planned.commit_only = True  # events happen once; edits and removals send nothing
            return planned
        build = event_object if sync.type == "events" else purchase_object
        planned.item = TrackItem(KIND_OF_SYNC[sync.type], build(sync, row, now), key)
        return planned
    if kind == REMOVED:
        if sync.on_removed == "keep":
            planned.commit_only = True
        elif sync.on_removed == "unset":
            planned.item = TrackItem("attributes", unset_object(sync, row), key)
        else:
            planned.delete = _delete_identifier(sync, row)
        return planned
    if kind == CHANGED and sync.mode == "insert":
        planned.commit_only = True  # insert-only never touches users it already created
        return planned
    # A new user gets every mapped field that has a value: there is nothing to unset yet.
    fields = [f for f, column in sync.mapping.items() if row.get(column) is not None]
    if kind == CHANGED and not set(sync.identifier.columns) & row["__changed"]:
        fields = [f for f, column in sync.mapping.items() if column in row["__changed"]]
        if not fields:
            planned.commit_only = True
            return planned
    planned.item = TrackItem("attributes", attributes_object(sync, row, fields), key)
    return planned


def _delete_identifier(sync: SyncConfig, row: dict) -> dict:
    ident = sync.identifier
    value = row.get(ident.columns[0])
    if value is None:
        raise RowError("identifier is missing; cannot delete the user", field=ident.columns[0])
    if ident.user_alias is not None:
        return {"user_aliases": {"alias_name": str(value), "alias_label": ident.user_alias.label}}
    if ident.kind not in ("external_id", "braze_id"):
        raise RowError(
            f"on_removed: delete needs an external_id, user_alias or braze_id identifier, not {ident.kind}"
        )
    return {f"{ident.kind}s": str(value)}


def full_resend_cost(
    engine: Engine,
    table: str,
    sync: SyncConfig,
    object_columns: frozenset[str] = frozenset(),
    value_counts: dict[str, int] | None = None,
) -> int:
    """Data points a full resend of the model would cost, by ``braze.datapoints``' rules:
    counted in the engine for plain values (one per non-null value of a field that costs,
    one per event, quantity x (1 + properties) per purchase); ``object`` columns cost one
    per key, so their values are read and priced one by one. ``value_counts``: each
    column's non-null values, when the model counted them as it checked its rows."""
    quoted = quote_ident(table)
    if sync.type == "attributes":
        costed = {f: c for f, c in sync.mapping.items() if f not in FREE_FIELDS}
        plain = [c for c in costed.values() if c not in object_columns]
        if value_counts is not None and not object_columns & set(costed.values()):
            return sum(value_counts[c] for c in plain)
        parts = [f"count({quote_ident(c)})" for c in plain]
    elif sync.type == "events":
        costed, parts = {}, ["count(*)"]
    else:
        spec = sync.purchase
        assert spec is not None
        props = [f"(CASE WHEN {quote_ident(c)} IS NULL THEN 0 ELSE 1 END)"
                 for c in spec.properties.values()]  # fmt: skip
        quantity = f"COALESCE({quote_ident(spec.quantity)}, 1)" if spec.quantity else "1"
        costed, parts = {}, [f"sum({quantity} * (1 + {' + '.join(props) or '0'}))"]
    row = engine.fetch_all(f"SELECT {' + '.join(parts) or '0'} FROM {quoted}")
    total = int(row[0][0] or 0)
    for name, column in costed.items():
        if column not in object_columns:
            continue
        ref = quote_ident(column)
        for batch in engine.iter_arrow(f"SELECT {ref} FROM {quoted} WHERE {ref} IS NOT NULL"):
            for value in batch.column(0).to_pylist():
                decoded = orjson.loads(value) if isinstance(value, str) else value
                total += attribute_data_points(name, decoded)
    return total


def _client_for(project: Project, sync: SyncConfig, state=None) -> BrazeClient:
    """A client under the destination's shared rate budget (shared with other processes
    through ``state`` when it is PostgreSQL)."""
    return destination_client(project, sync.destination, state, where="syncs")


def _record_rejections(state, run_id: int | None, report: SyncReport, model: ModelResult) -> None:
    """The model's rejected rows become the run's row errors."""
    errors = [
        RowError(r.reason, row=r.row_key, field=r.field, value=r.value) for r in model.rejected
    ]
    _record_errors(state, run_id, report, errors)
    report.rejected = model.rejected_count


def _record_errors(state, run_id: int | None, report: SyncReport, errors: list[RowError]) -> None:
    """Store every row error with the run (one insert) and keep the first few to show."""
    if not errors:
        return
    for error in errors:  # a secret field's value is never stored (nor shown)
        if _SECRETS.is_secret(error.field):
            error.reason = reason_without_value(error.reason, REDACTED)
            error.args = (error.reason,)
            if error.value is not None:
                error.value = REDACTED
    if run_id is not None:
        runs.add_row_errors(state, run_id, errors)
    report.errors.extend(errors[: max(SHOWN_ERRORS - len(report.errors), 0)])


class _Run:
    """The mutable state of one run, shared by planning, sending and committing."""

    def __init__(self, project, name, sync, engine, state, run_id, report, progress, stop=None):
        self.project, self.name, self.sync = project, name, sync
        self.engine, self.state, self.run_id = engine, state, run_id
        self.report, self.progress = report, progress
        self.stop: threading.Event | None = stop  # set by a stopping server
        self.stopped = False
        self.committer = BatchCommitter(
            lambda keys: commit_accepted(engine, name, keys),
            enabled=run_id is not None,
            background=True,
            # A PostgreSQL commit looks its keys up (it costs what its rows cost): commit
            # as soon as due, so the last one, which the run waits for, is small.
            spacing=1 if engine.dialect == "postgres" else SPACING,
        )
        self.done = 0
        self.total = 0
        self.last_beat = time.monotonic()
        self.costs: dict[object, int] = {}
        self.deletes: list[tuple[object, dict]] = []
        self.now = datetime.now(UTC)

    def reject(self, error: RowError, key: object) -> None:
        error.row = key
        self.report.rejected += 1
        _record_errors(self.state, self.run_id, self.report, [error])

    def items(self, diff: DiffResult) -> Iterator[TrackItem]:
        model = self.project.models[self.sync.model]
        types = {c: spec.type for c, spec in model.columns.items()}
        json_columns = [i for i, c in enumerate(diff.columns) if types.get(c) == "object"]
        builder = AttributeBuilder(self.sync, diff.columns, types)
        times = time_columns(self.sync, types)
        for batch in _diff_batches(self.engine, self.sync, diff, times):
            # With --full, unchanged rows come with every bit set: resend them as changed.
            kinds = [CHANGED if k == UNCHANGED else k for k in batch.column(KIND).to_pylist()]
            values = [batch.column(c).to_pylist() for c in diff.columns]
            for j in json_columns:  # ``object`` columns arrive as JSON text from DuckDB
                values[j] = [orjson.loads(v) if isinstance(v, str) else v for v in values[j]]
            plan = builder.plan(batch, kinds, values)
            if plan.row_path:
                keys = batch.column(KEY).to_pylist()
                masks = [batch.column(m).to_pylist() for m in diff.masks]
                for i in plan.row_path:
                    yield from self._plan_one(
                        _row_at(diff.columns, values, masks, i, keys[i], kinds[i])
                    )
            if plan.commit_only:
                keys = batch.column(KEY).to_pylist()
                self.committer.add([keys[i] for i in plan.commit_only])
                self.tick(len(plan.commit_only))
            self.costs.update(zip((item.ref for item in plan.items), plan.costs, strict=True))
            yield from plan.items

    def stoppable_items(self, diff: DiffResult) -> Iterator[TrackItem]:
        """``items``, ending early once a stopping server sets ``stop``: what is in flight
        still settles and is committed; the next run sends the rest."""
        if self.stop is None:
            yield from self.items(diff)
            return
        for item in self.items(diff):
            if self.stop.is_set():
                self.stopped = True
                return
            yield item

    def _plan_one(self, row: dict) -> Iterator[TrackItem]:
        try:
            planned = _plan_row(self.sync, row, self.now)
        except RowError as exc:
            self.reject(exc, row["__key"])
            self.tick(1)
            return
        if planned.commit_only:
            self.committer.add([planned.key])
            self.tick(1)
        elif planned.delete is not None:
            self.deletes.append((planned.key, planned.delete))
        else:
            assert planned.item is not None
            self.costs[planned.key] = data_points(planned.item.kind, planned.item.payload)
            yield planned.item

    def tick(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)
        if self.run_id is not None and time.monotonic() - self.last_beat > HEARTBEAT_SECONDS:
            self.last_beat = time.monotonic()
            runs.record_progress(self.state, self.run_id, **self.report.counts())

    def on_results(self, results: list[ItemResult]) -> None:
        accepted, failed = [], []
        for result in results:
            if result.ok:
                accepted.append(result.ref)
                self.report.data_points += self.costs.pop(result.ref, 0)
            else:
                self.costs.pop(result.ref, None)
                failed.append(RowError(f"Braze: {result.error}", row=result.ref))
        self.report.failed += len(failed)
        _record_errors(self.state, self.run_id, self.report, failed)
        self.report.sent += len(accepted)
        self.committer.add(accepted)
        self.tick(len(results))

    async def send_deletes(self, client: BrazeClient) -> None:
        for chunk in chunks(self.deletes, MAX_IDS_PER_REQUEST):
            by_kind: dict[str, list] = {}
            for _key, ident in chunk:
                for kind, value in ident.items():
                    by_kind.setdefault(kind, []).append(value)
            try:
                await client.delete_users(**by_kind)
            except (BrazeUnavailableError, BrazeRejectedError) as exc:
                if isinstance(exc, BrazeRejectedError) and exc.status in (401, 403):
                    raise
                self.on_results([ItemResult(key, False, str(exc)) for key, _ident in chunk])
                continue
            self.report.requests += 1
            keys = [key for key, _ in chunk]
            self.report.sent += len(keys)
            self.committer.add(keys)
            self.tick(len(keys))


async def _send(run: _Run, diff: DiffResult) -> None:
    async with _client_for(run.project, run.sync, run.state) as client:
        summary = await client.track(run.stoppable_items(diff), on_results=run.on_results)
        run.report.requests += summary.requests
        if not run.stopped:
            await run.send_deletes(client)


def _preview(run: _Run, diff: DiffResult, limit: int) -> None:
    for item in run.items(diff):
        if len(run.report.preview) < limit:
            run.report.preview.append({item.kind: item.payload})
        run.report.data_points += run.costs.pop(item.ref, 0)


def _refuse_overlap(state, name: str) -> None:
    """Two runs of one sync would overwrite each other's diff table: refuse the second.
    Asked of the running runs themselves, not the latest few: a schedule records a skipped
    run for each slot that came due meanwhile, and those would hide it."""
    running = runs.running_runs(state).get(name)
    record = runs.get_run(state, running) if running is not None else None
    if record is not None:
        raise FatalError(
            f"sync {name!r} is already running (run {record.id}, pid {record.pid} on "
            f"{record.host}); wait for it, or stop it: a killed run is marked interrupted"
        )


STOPPED = "stopped with the server before the end; the next run sends the rest"


def run_sync(
    project: Project,
    name: str,
    *,
    full: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    preview_rows: int = PREVIEW_ROWS,
    stop: threading.Event | None = None,
) -> SyncReport:
    """Run sync ``name`` once. ``dry_run`` computes and previews without sending.

    ``stop``: when set (by a stopping ``serve``), the run sends nothing more, lets what is
    in flight settle, commits what Braze accepted and records itself ``interrupted``; the
    next run sends the rest."""
    sync = _sync(project, name)
    started = time.monotonic()
    state = open_state(project.state_url)
    runs.mark_interrupted(state)
    if not dry_run:
        try:
            _refuse_overlap(state, name)
        except FatalError as exc:
            state.dispose()
            return SyncReport(sync=name, run_id=None, status="failed", error=str(exc))
    run_id = None if dry_run else runs.start_run(state, name)
    report = SyncReport(sync=name, run_id=run_id, status="running", dry_run=dry_run)
    engine: Engine | None = None
    run: _Run | None = None
    completed = False
    try:
        # The model is read only through this engine's connection: a PostgreSQL model may
        # stay where it is (a view) instead of being copied into a table each run.
        model = materialize_any(project, sync.model, in_place=True, publish=not dry_run)
        engine = model.engine
        assert engine is not None
        if not dry_run and merges.wanted(project, sync.model):
            for error in merges.send_merges(project, sync.model, engine).errors:
                log.warning("sync %s: /users/merge: %s", name, error)
        pending = model.pending_checks is not None
        if not pending:
            _record_rejections(state, run_id, report, model)
        checked = project.models[sync.model].identity is None  # its primary key is required
        diff = compute_diff(
            engine,
            name,
            model.table,
            model.primary_key,
            sync.columns,
            full=full,
            rows=model.row_count if checked and not pending else None,
            # A model read in place is checked in the diff's transaction (the same rows),
            # beside the diff itself.
            checks=model.start_checks if pending else None,
            model_sql=model.relation_sql,
            model_setup=model.setup,
        )
        if pending:
            _record_rejections(state, run_id, report, model)
        columns = project.models[sync.model].columns
        objects = frozenset(c for c, spec in columns.items() if spec.type == "object")
        report.full_data_points = full_resend_cost(
            engine, model.table, sync, objects, model.value_counts
        )
        report.added, report.changed = diff.added, diff.changed
        report.removed, report.unchanged = diff.removed, diff.unchanged
        run = _Run(project, name, sync, engine, state, run_id, report, progress, stop)
        run.total = diff.rows
        if sync.type == "attributes":
            every = max(run.committer.every_rows, diff.rows // COMMITS_PER_RUN)
            run.committer.every_rows = every
        if dry_run:
            _preview(run, diff, preview_rows)
        else:
            with fewer_collections():  # a dict per row, freed by reference count
                asyncio.run(_send(run, diff))
            run.committer.flush()
            if run.stopped:
                report.error = STOPPED
        completed = not run.stopped
    except HeadwaterError as exc:
        report.error = str(exc)
        completed = True
    except Exception as exc:  # an engine or driver failure: record it, keep the traceback
        log.exception("sync %s failed", name)
        report.error = f"{type(exc).__name__}: {exc}"
        completed = True
    finally:
        report.seconds = time.monotonic() - started
        if run_id is not None:
            report.status = runs.finish_run(
                state,
                run_id,
                status=None if completed else runs.INTERRUPTED,
                error=report.error,
                data_points_saved=report.data_points_saved,
                **report.counts(),
            )
        else:  # a dry run records no run: its outcome is said here
            report.status = "dry run" if report.error is None else "failed"
        if run is not None:
            run.committer.join()
        if engine is not None:
            engine.close()
        state.dispose()
    return report


def run_job(project: Project, name: str, *, stop: threading.Event | None = None) -> SyncReport:
    """The scheduler's way in (``headwater.schedules.jobs``): the sync as ``headwater sync``
    runs it, stopped early by ``stop``."""
    return run_sync(project, name, stop=stop)
