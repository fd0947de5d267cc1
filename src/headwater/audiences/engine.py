"""One audience run: materialise the model, diff membership in its engine, send only
entries and exits, commit each person once Braze accepted what they were sent.

The audiences over one model are run together when asked together (``headwater
audiences sync``): their membership is diffed in one pass over the model
(``membership.compute_delta``); each still gets its own run record. Runs over one model
take turns in a process (a lock per model), since they share its state table.

Entering a split sends ``<attribute>: true``; leaving sends ``false`` (or ``null`` with
``on_exit: unset``); moving between splits sends both in one object. The holdout is sent
nothing, its stays are only recorded. A person is committed only when every object sent
for them was accepted, so a failure or a crash resends them next run (attributes are
idempotent) and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headwater.audiences import membership
from headwater.audiences.membership import Plan
from headwater.audiences.splits import allocate
from headwater.braze.client import BrazeClient, ItemResult, TrackItem
from headwater.braze.datapoints import data_points
from headwater.braze.errors import BrazeRejectedError
from headwater.braze.identifiers import ObjectError, check_identifier
from headwater.config import AudienceConfig, Project, SyncIdentifier
from headwater.config.audiences import HOLDOUT, condition_sql, render_attribute
from headwater.engines import Engine
from headwater.errors import ConfigError, HeadwaterError, RowError
from headwater.runtime.clients import destination_client
from headwater.runtime.committer import EVERY_ROWS, BatchCommitter
from headwater.state import runs
from headwater.state.audiences import Allocation, load_allocation, save_allocation, save_sizes
from headwater.state.db import open_state

log = logging.getLogger(__name__)

COMMIT_EVERY_ROWS = EVERY_ROWS  # a module setting, so a test can lower it
HEARTBEAT_SECONDS = 2.0
PREVIEW_ROWS = 5
SHOWN_ERRORS = 20
KIND = "audience"
STOPPED = "stopped with the server before the end; the next run sends the rest"

Progress = Callable[[int, int], None]
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass
class AudienceReport:
    """What a run did, for the CLI, the scheduler and tests."""

    audience: str
    run_id: int | None
    status: str
    dry_run: bool = False
    added: int = 0  # entries (the holdout's included)
    removed: int = 0  # exits
    changed: int = 0  # moves between splits, members reached through a new identifier
    unchanged: int = 0
    rejected: int = 0
    failed: int = 0
    sent: int = 0
    requests: int = 0
    data_points: int = 0
    seconds: float = 0.0
    error: str | None = None
    sizes: dict[str, int] = field(default_factory=dict)  # members per split after the run
    preview: list[dict] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # split -> (key, object sent) of the entries Braze accepted, for triggers
    entries: dict[str, list[tuple[Any, dict]]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        names = ("added", "changed", "removed", "unchanged", "rejected", "failed", "sent")
        return {n: getattr(self, n) for n in (*names, "requests", "data_points")}


def audience_config(project: Project, name: str) -> AudienceConfig:
    try:
        return project.audiences[name]
    except KeyError:
        known = ", ".join(sorted(project.audiences)) or "none"
        raise ConfigError(f"no audience named {name!r} (audiences: {known})") from None


def attributes(project: Project, name: str) -> dict[str, str]:
    """Split -> the Braze attribute it sets (the holdout has none)."""
    audience = audience_config(project, name)
    template = audience.attribute or project.audience_defaults.attribute
    return {s: render_attribute(template, name, s) for s in audience.split_names()}


def identifier(audience: AudienceConfig, primary_key: str) -> SyncIdentifier:
    return audience.identifier or SyncIdentifier(external_id=primary_key)


def _lock(project: Project, model: str) -> threading.Lock:
    key = (str(project.warehouse_url), model)
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _materialize(project: Project, model: str, dry_run: bool = False):
    """The model's rows in its engine (an identity model's golden records: resolved first,
    except in a dry run, which reads the last resolution's and changes nothing)."""
    from headwater.identity import materialize_any

    return materialize_any(project, model, publish=not dry_run)


class _Builder:
    """Delta rows -> Braze objects for one audience."""

    def __init__(self, project: Project, name: str, primary_key: str) -> None:
        audience = audience_config(project, name)
        self.attributes: dict[str, str] = attributes(project, name)
        on_exit = audience.on_exit or project.audience_defaults.on_exit
        self.exit_value = False if on_exit == "false" else None
        ident = identifier(audience, primary_key)
        self.kind = ident.kind
        self.column = ident.columns[0]
        self.label = ident.user_alias.label if ident.user_alias is not None else None
        self.flag: bool | None = None
        if audience.mode == "update":
            self.flag = True
        elif self.label is not None:
            self.flag = False  # Braze creates alias-only users only when asked

    def who(self, value: object) -> dict:
        if value is None or value == "":
            raise RowError("identifier is missing", field=self.column)
        value = str(value)
        if self.label is not None:
            obj: dict = {"user_alias": {"alias_name": value, "alias_label": self.label}}
        else:
            obj = {self.kind: value}
        if self.flag is not None:
            obj["_update_existing_only"] = self.flag
        try:
            check_identifier(obj)
        except ObjectError as exc:
            raise RowError(exc.type, field=self.column) from None
        return obj

    def objects(self, old: str | None, new: str | None, ident, old_ident) -> list[dict]:
        """What one person's change sends (maybe nothing: the holdout's moves)."""
        leave = {self.attributes[old]: self.exit_value} if old not in (None, HOLDOUT) else {}
        enter = {self.attributes[new]: True} if new not in (None, HOLDOUT) else {}
        if old is not None and new is not None and ident != old_ident:
            # reached through a new identifier: the old one leaves, the new one enters
            out = [self.who(ident) | enter] if enter else []
            if leave and old_ident not in (None, ""):
                out.append(self.who(old_ident) | leave)
            return out
        if not leave and not enter:
            return []
        return [self.who(ident if new is not None else old_ident) | leave | enter]


class _Run:
    """One audience's send-and-commit, with its report."""

    def __init__(self, project, name, model, engine, state, run_id, report, builder, plan):
        self.project, self.name, self.model = project, name, model
        self.engine, self.state, self.run_id = engine, state, run_id
        self.report, self.builder, self.plan = report, builder, plan
        self.committer = BatchCommitter(
            lambda keys: membership.commit(
                engine, model, plan, keys, datetime.now(UTC).isoformat()
            ),
            enabled=run_id is not None,
            every_rows=COMMIT_EVERY_ROWS,
        )
        self.parts: dict[Any, int] = {}  # key -> objects still to be accepted
        self.failed_keys: set = set()
        self.costs: dict[Any, int] = {}
        self.entering: dict[Any, tuple] = {}  # key -> (split it enters, object sent)
        self.collect = _trigger_hook() is not None
        self.stop: threading.Event | None = None
        self.stopped = False
        self.progress: Progress | None = None
        self.done = 0
        self.total = 0
        self.last_beat = time.monotonic()

    def reject(self, error: RowError, key: Any) -> None:
        error.row = key
        self.report.rejected += 1
        self._errors([error])

    def _errors(self, errors: list[RowError]) -> None:
        if self.run_id is not None and errors:
            runs.add_row_errors(self.state, self.run_id, errors)
        self.report.errors.extend(errors[: max(SHOWN_ERRORS - len(self.report.errors), 0)])

    def items(self) -> Iterator[TrackItem]:
        for batch in membership.iter_changes(self.engine, self.model, self.plan):
            keys, old, new, ident, old_ident = (c.to_pylist() for c in batch.columns)
            quiet = []
            for i, key in enumerate(keys):
                if self.stop is not None and self.stop.is_set():
                    self.stopped = True
                    return
                try:
                    objects = self.builder.objects(old[i], new[i], ident[i], old_ident[i])
                except RowError as exc:
                    self.reject(exc, key)
                    self.tick(1)
                    continue
                if self.collect and new[i] not in (None, HOLDOUT) and old[i] != new[i]:
                    self.entering[key] = (new[i], objects[0])
                if not objects:
                    quiet.append(key)
                    continue
                if len(objects) > 1:
                    self.parts[key] = len(objects)
                for obj in objects:
                    self.costs[key] = self.costs.get(key, 0) + data_points("attributes", obj)
                    yield TrackItem("attributes", obj, key)
            if quiet:  # the holdout's moves: nothing to send, just remember them
                self.committer.add(quiet)
                self.tick(len(quiet))

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
            key = result.ref
            if not result.ok:
                if key not in self.failed_keys:
                    self.failed_keys.add(key)
                    failed.append(RowError(f"Braze: {result.error}", row=key))
                self.costs.pop(key, None)
                self.parts.pop(key, None)
                continue
            self.report.sent += 1
            if key in self.failed_keys:
                continue
            remaining = self.parts.get(key, 1) - 1
            if remaining > 0:
                self.parts[key] = remaining
                continue
            self.parts.pop(key, None)
            self.report.data_points += self.costs.pop(key, 0)
            accepted.append(key)
        self.report.failed += len(failed)
        self._errors(failed)
        self.committer.add(accepted)
        for key in accepted:
            entered = self.entering.pop(key, None)
            if entered is not None:
                self.report.entries.setdefault(entered[0], []).append((key, entered[1]))
        self.tick(len(accepted) + len(failed))


async def _send(run: _Run, client: BrazeClient) -> None:
    summary = await client.track(run.items(), on_results=run.on_results)
    run.report.requests += summary.requests


def _preview(run: _Run, limit: int) -> None:
    for item in run.items():
        if len(run.report.preview) < limit:
            run.report.preview.append(item.payload)
        run.report.data_points += run.costs.pop(item.ref, 0)


def _refuse_overlap(state, name: str) -> str | None:
    running = runs.running_runs(state).get(name)
    record = runs.get_run(state, running) if running is not None else None
    if record is None:
        return None
    return (
        f"audience {name!r} is already running (run {record.id}, pid {record.pid} on "
        f"{record.host}); wait for it, or stop it: a killed run is marked interrupted"
    )


def plan_for(project: Project, name: str, primary_key: str, previous=None) -> Plan:
    """The audience's SQL plan, its shares allocated over ``previous`` ranges (none: a
    first allocation)."""
    audience = audience_config(project, name)
    return Plan(
        name=name,
        condition=condition_sql(audience.where),
        ident_column=identifier(audience, primary_key).columns[0],
        salt=audience.salt or name,
        ranges=allocate(previous or {}, audience.groups()),
        primary_key=primary_key,
    )


def _plan(project: Project, name: str, primary_key: str, state, dry_run: bool) -> tuple:
    """The audience's plan and whether its salt changed (its kept slots are stale). New
    shares are allocated over the saved ones and saved, unless this is a dry run."""
    saved = load_allocation(state, name)
    plan = plan_for(project, name, primary_key, saved.ranges)
    if not dry_run and (plan.ranges != saved.ranges or saved.salt != plan.salt):
        save_allocation(state, name, Allocation(plan.salt, plan.ranges))
    return plan, saved.salt is not None and saved.salt != plan.salt


def run_audiences(
    project: Project,
    names: list[str] | None = None,
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    preview_rows: int = PREVIEW_ROWS,
) -> list[AudienceReport]:
    """Run audiences (all when ``names`` is None), those over one model in one pass."""
    names = list(project.audiences) if names is None else names
    for name in names:
        audience_config(project, name)
    by_model: dict[str, list[str]] = {}
    for name in names:
        by_model.setdefault(project.audiences[name].model, []).append(name)
    reports: list[AudienceReport] = []
    for model, group in by_model.items():
        with _lock(project, model):
            reports += _run_model(project, model, group, dry_run, stop, progress, preview_rows)
    return reports


def run_audience(project: Project, name: str, **options: Any) -> AudienceReport:
    return run_audiences(project, [name], **options)[0]


def run_job(project: Project, name: str, *, stop: threading.Event | None = None):
    """The scheduler's entry point: one audience, to the end (or until ``stop``)."""
    return run_audience(project, name, stop=stop)


def _run_model(project, model, names, dry_run, stop, progress, preview_rows):
    started = time.monotonic()
    state = open_state(project.state_url)
    runs.mark_interrupted(state)
    reports: dict[str, AudienceReport] = {}
    for name in names:
        refused = None if dry_run else _refuse_overlap(state, name)
        run_id = None if dry_run or refused else runs.start_run(state, name, kind=KIND)
        reports[name] = AudienceReport(
            audience=name,
            run_id=run_id,
            status="failed" if refused else "running",
            dry_run=dry_run,
            error=refused,
        )
    live = [n for n in names if reports[n].error is None]
    engine: Engine | None = None
    try:
        if live:
            result = _materialize(project, model, dry_run)
            engine = result.engine
            assert engine is not None
            plans = _prepare(project, model, result, live, state, dry_run, reports)
            for name in _deltas(engine, model, result, plans, reports):
                _run_one(project, name, model, engine, state, result, plans[name],
                         reports[name], dry_run, stop, progress, preview_rows)  # fmt: skip
    except HeadwaterError as exc:
        for name in live:
            reports[name].error = reports[name].error or str(exc)
    except Exception as exc:  # an engine or driver failure: recorded, traceback logged
        log.exception("audiences over %s failed", model)
        for name in live:
            reports[name].error = reports[name].error or f"{type(exc).__name__}: {exc}"
    except BaseException:  # Ctrl+C, SIGTERM: what was committed stays, the rest is resent
        for name in live:
            reports[name].error = reports[name].error or STOPPED
        raise
    finally:
        for report in reports.values():
            report.seconds = report.seconds or time.monotonic() - started
            if report.run_id is not None:
                stopped = report.error == STOPPED
                report.status = runs.finish_run(
                    state,
                    report.run_id,
                    status=runs.INTERRUPTED if stopped else None,
                    error=report.error,
                    **report.counts(),
                )
            elif report.error is None:
                report.status = "dry run"
        if engine is not None:
            engine.close()
        state.dispose()
    return [reports[n] for n in names]


def _prepare(project, model, result, names, state, dry_run, reports) -> dict[str, Plan]:
    plans: dict[str, Plan] = {}
    for name in names:
        try:
            plan, salt_changed = _plan(project, name, result.primary_key, state, dry_run)
        except (HeadwaterError, ValueError) as exc:
            reports[name].error = f"audience {name!r}: {exc}"
            continue
        plans[name] = plan
        if salt_changed and not dry_run:
            membership.ensure_tables(result.engine, model, result.table, result.primary_key, [plan])
            membership.forget_slots(result.engine, model, plan)
    ready = membership.ensure_tables(
        result.engine, model, result.table, result.primary_key, list(plans.values())
    )
    return {plan.name: plan for plan in ready}


def _deltas(engine, model, result, plans: dict[str, Plan], reports) -> Iterator[str]:
    """The audiences, each once its delta is written. Every audience is diffed in the
    first call, in one pass; if that fails (a condition that cannot run), each is diffed alone so that
    only the broken one fails."""
    if not plans:
        return

    def together() -> None:
        membership.compute_delta(
            engine, model, result.table, result.primary_key, list(plans.values())
        )

    try:
        together()
    except Exception as exc:
        if len(plans) == 1:
            name = next(iter(plans))
            reports[name].error = f"audience {name!r}: {type(exc).__name__}: {exc}"
            return
    else:
        yield from plans
        return
    for name, plan in plans.items():
        try:
            membership.compute_delta(engine, model, result.table, result.primary_key, [plan])
        except Exception as exc:
            reports[name].error = f"audience {name!r}: {type(exc).__name__}: {exc}"
            continue
        yield name


def _run_one(
    project, name, model, engine, state, result, plan, report, dry_run, stop, progress, rows
):
    started = time.monotonic()
    try:
        counts = membership.count_changes(engine, model, plan)
        report.added, report.removed, report.changed = (
            counts["added"],
            counts["removed"],
            counts["changed"],
        )
        before = sum(membership.split_sizes(engine, model, name).values())
        report.unchanged = max(before - report.removed - report.changed, 0)
        builder = _Builder(project, name, result.primary_key)
        run = _Run(project, name, model, engine, state, report.run_id, report, builder, plan)
        run.stop, run.progress = stop, progress
        run.total = report.added + report.removed + report.changed
        if dry_run:
            _preview(run, rows)
        else:
            audience = audience_config(project, name)

            async def send() -> None:
                client = destination_client(
                    project, audience.destination, state, where=f"audiences.{name}"
                )
                async with client:
                    await _send(run, client)

            try:
                asyncio.run(send())
            finally:
                run.committer.flush()
            if run.stopped:
                report.error = STOPPED
            else:
                if not plan.settled:  # shares or salt changed: settled once all moved
                    membership.settle(engine, model, plan)
                _fire_triggers(project, name, engine, result, run, stop)
        report.sizes = membership.split_sizes(engine, model, name)
        if not dry_run:  # the console reads them from here, not from the warehouse
            save_sizes(state, name, report.sizes, report.run_id)
    except BrazeRejectedError as exc:
        report.error = str(exc)
    except HeadwaterError as exc:
        report.error = str(exc)
    except Exception as exc:
        log.exception("audience %s failed", name)
        report.error = f"{type(exc).__name__}: {exc}"
    report.seconds = time.monotonic() - started


def _trigger_hook() -> Callable | None:
    try:
        from headwater import triggers
    except ImportError:
        return None
    return getattr(triggers, "fire_on_audience_entry", None)


def _fire_triggers(project, name, engine, result, run: _Run, stop) -> None:
    """Hand the entries this run committed to ``headwater.triggers`` (campaigns and
    canvases sent on entry), split by split; skipped while triggers offers no hook."""
    fire = _trigger_hook()
    if fire is None or not run.report.entries:
        return
    attributes = set(run.builder.attributes.values())
    for split, entered in run.report.entries.items():
        keys = [key for key, _obj in entered]
        records = membership.fetch_records(engine, result.table, result.primary_key, keys)
        entries = [
            {
                "person_id": str(key),
                "identifier": {k: v for k, v in obj.items() if k not in attributes},
                "record": records.get(str(key), {}),
                # The entry's identity for the triggers' exactly-once ledger: this run, so
                # entering again in a later run fires again (headwater.triggers.fire).
                "entered_at": f"run {run.run_id}",
            }
            for key, obj in entered
        ]
        fire(project, name, split, entries, stop=stop)
