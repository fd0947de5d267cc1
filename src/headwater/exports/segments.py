"""``headwater export segments``: Braze segments landed as tables.

One run: ``/segments/list`` (every page), then for each chosen segment
``/users/export/segment`` with the fields the project asks for, wait for the files (the
answer's ``url`` is polled; Braze may also POST ``callback_url``), download, read the
newline-delimited JSON, and land (``segments_land``): members replaced, membership history
updated, the segments table row replaced. Up to ``MAX_EXPORTS_IN_FLIGHT`` exports are
prepared by Braze at once; landing is one segment at a time.

A segment that fails (Braze refuses, the files never come, the file is damaged) keeps its
previous tables and is reported; the others still land. The run is recorded in the
state store (``kind="export"``, job name ``segments``) like a sync's, with bad lines as
row errors. ``run_job`` is the scheduler's entry point.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from headwater.braze.client import BrazeClient
from headwater.braze.errors import BrazeRejectedError
from headwater.braze.retry import Backoff
from headwater.braze.segment_export import build_request
from headwater.config import Project
from headwater.config.exports import SegmentExportConfig
from headwater.errors import ConfigError, FatalError, HeadwaterError, RowError
from headwater.exports.landing import create_views, table_name, view_sql
from headwater.exports.segments_callback import Callback
from headwater.exports.segments_checks import resolve_fields
from headwater.exports.segments_files import download_when_ready, read_export
from headwater.exports.segments_land import (
    HISTORY_FILE,
    MEMBERS_FILE,
    SEGMENTS_FILE,
    land_segment,
    read_segments,
    segments_root,
)
from headwater.exports.segments_table import MembersParser
from headwater.state import runs
from headwater.state.budgets import budget_options
from headwater.state.db import open_state

log = logging.getLogger(__name__)

JOB = "segments"
KIND = "export"
SEGMENTS_PER_PAGE = 100
MAX_PAGES = 10_000
MAX_EXPORTS_IN_FLIGHT = 10  # Braze allows 100 per company; leave room for everyone else
SHOWN_ERRORS = 10
STOPPED = "stopped with the server before the end; segments not landed keep their tables"

# (segment name, phase, done, total): phases "export" (asked Braze), "download" (bytes),
# "parse" (users read), "landed" (members), "failed".
Progress = Callable[[str, str, int, int | None], None]


@dataclass
class SegmentResult:
    segment_id: str
    name: str
    status: str = "pending"  # landed | failed | stopped
    members: int = 0
    duplicates: int = 0
    rejected: int = 0
    entered: int = 0
    exited: int = 0
    stayed: int = 0
    bytes: int = 0
    seconds: float = 0.0
    path: str | None = None
    error: str | None = None


@dataclass
class ExportReport:
    """What a run did, for the CLI, the scheduler and tests."""

    job: str
    run_id: int | None
    status: str
    segments: list[SegmentResult] = field(default_factory=list)
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None
    errors: list[RowError] = field(default_factory=list)  # the first few, to show

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.segments)

    def counts(self) -> dict[str, int]:
        landed = [s for s in self.segments if s.status == "landed"]
        return {
            "added": sum(s.entered for s in landed),
            "removed": sum(s.exited for s in landed),
            "unchanged": sum(s.stayed for s in landed),
            "rejected": self.rejected,
            "failed": sum(1 for s in self.segments if s.status == "failed"),
            "requests": self.requests,
        }

    def to_dict(self) -> dict:
        return {
            "job": self.job,
            "run_id": self.run_id,
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "segments": [asdict(s) for s in self.segments],
            "errors": [{"row": e.row, "field": e.field, "reason": e.reason} for e in self.errors],
        }


def segments_config(project: Project) -> SegmentExportConfig:
    config = project.exports.segments
    if config is None:
        raise ConfigError(
            "exports.segments: not configured; add an exports: segments: block naming the "
            "destination to export from (see docs/guide/exports.md)"
        )
    if config.destination not in project.destinations:
        raise ConfigError(
            f"exports.segments.destination: no destination named {config.destination!r}"
        )
    return config


def _client(project: Project, config: SegmentExportConfig, state) -> BrazeClient:
    dest = project.destinations[config.destination]
    return BrazeClient(
        dest.url,
        dest.api_key,
        max_concurrency=min(dest.max_concurrency, MAX_EXPORTS_IN_FLIGHT),
        timeout=dest.timeout_seconds,
        max_attempts=dest.max_attempts,
        backoff=Backoff(base_seconds=dest.retry_base_seconds),
        **budget_options(dest.url, dest.api_key.get_secret_value(), dest.rate_limits, state),
    )


def run_job(project: Project, name: str, *, stop: threading.Event | None = None) -> ExportReport:
    """The scheduler's entry point: ``name`` is the export job (``segments``)."""
    if name != JOB:
        raise ConfigError(f"no export job named {name!r}; the segment export is {JOB!r}")
    return run_segments_export(project, stop=stop)


def run_segments_export(
    project: Project,
    *,
    segments: list[str] | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> ExportReport:
    """Export and land the configured segments (or ``segments``: names or ids) once.

    ``clock`` stamps ``exported_at``, ``first_seen`` and ``last_seen`` (tests step it).
    ``stop`` (a stopping ``serve``): no new export starts, waits end, the run is recorded
    interrupted; segments already landed stay landed."""
    config = segments_config(project)
    fields = resolve_fields(config.fields_to_export)
    started = time.monotonic()
    state = open_state(project.state_url)
    report = ExportReport(job=JOB, run_id=None, status="running")
    try:
        runs.mark_interrupted(state)
        running = runs.running_runs(state).get(JOB)
        record = runs.get_run(state, running) if running is not None else None
        if record is not None and record.kind == KIND:  # (a sync may be named segments too)
            report.status = "failed"
            report.error = (
                f"the segment export is already running (run {running}"
                + f", pid {record.pid} on {record.host}"
                + "); wait for it: two runs would replace each other's tables"
            )
            return report
        report.run_id = runs.start_run(state, JOB, kind=KIND)
        job = _Job(project, config, fields, state, report, progress, stop, clock)
        try:
            asyncio.run(job.run(segments))
        except HeadwaterError as exc:
            report.error = str(exc)
        except Exception as exc:  # a bug or a driver failure: recorded, traceback logged
            log.exception("segment export failed")
            report.error = f"{type(exc).__name__}: {exc}"
        _finish(state, report, job)
    finally:
        report.seconds = time.monotonic() - started
        state.dispose()
    return report


def _finish(state, report: ExportReport, job: _Job) -> None:
    failed = [s for s in report.segments if s.status == "failed"]
    stopped = job.stopped()
    status = None
    if report.error is None and failed:
        shown = "; ".join(f"{s.name}: {s.error}" for s in failed[:5])
        more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        report.error = f"{len(failed)} of {len(report.segments)} segments failed: {shown}{more}"
        status = runs.FAILED if len(failed) == len(report.segments) else runs.PARTIAL
    if stopped:
        status = runs.INTERRUPTED
        report.error = report.error or STOPPED
    report.status = runs.finish_run(
        state, report.run_id, status=status, error=report.error, **report.counts()
    )


class _Job:
    def __init__(self, project, config, fields, state, report, progress, stop, clock):
        self.project, self.config, self.fields = project, config, fields
        self.state, self.report = state, report
        self.progress: Progress = progress or (lambda *_: None)
        self.stop: threading.Event | None = stop
        self.clock = clock
        self.landing = project.landing_path
        self._land_lock = asyncio.Lock()

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    async def run(self, wanted: list[str] | None) -> None:
        async with _client(self.project, self.config, self.state) as client:
            listed = await self._list(client)
            chosen = choose_segments(listed, wanted or self.config.segments)
            self.report.segments = [
                SegmentResult(s["id"], str(s.get("name") or s["id"])) for s in chosen
            ]
            gate = asyncio.Semaphore(MAX_EXPORTS_IN_FLIGHT)
            await asyncio.gather(*(self._one(client, gate, r) for r in self.report.segments))

    async def _list(self, client: BrazeClient) -> list[dict]:
        found: list[dict] = []
        for page in range(MAX_PAGES):
            answer = await client.request("segments.list", params={"page": page})
            self.report.requests += 1
            batch = answer.get("segments")
            if not isinstance(batch, list):
                raise FatalError("/segments/list answered without a segments array")
            found += [s for s in batch if isinstance(s, dict) and isinstance(s.get("id"), str)]
            if len(batch) < SEGMENTS_PER_PAGE:
                break
        return found

    async def _one(self, client: BrazeClient, gate: asyncio.Semaphore, result: SegmentResult):
        began = time.monotonic()
        async with gate:
            if self.stopped():
                result.status, result.error = "stopped", STOPPED
                return
            try:
                await self._export(client, result)
                result.status = "landed"
                self.progress(result.name, "landed", result.members, result.members)
            except HeadwaterError as exc:
                result.status, result.error = "failed", _short(exc)
                self.progress(result.name, "failed", 0, None)
            except Exception as exc:
                log.exception("segment %s: export failed", result.name)
                result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
                self.progress(result.name, "failed", 0, None)
            finally:
                result.seconds = time.monotonic() - began

    async def _export(self, client: BrazeClient, result: SegmentResult) -> None:
        exported_at = datetime.fromtimestamp(self.clock(), UTC)
        callback = (
            Callback(self.state, self.config.callback_base_url)
            if self.config.callback_base_url
            else None
        )
        try:
            await self._export_with(client, result, exported_at, callback)
        finally:
            if callback is not None:
                callback.close()

    async def _export_with(
        self, client: BrazeClient, result: SegmentResult, exported_at, callback
    ) -> None:
        endpoint = callback.url if callback is not None else self.config.callback_url
        body = build_request(result.segment_id, self.fields, endpoint)
        answer = await client.request("users.export.segment", body)
        self.report.requests += 1
        self.progress(result.name, "export", 0, None)
        url = answer.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise FatalError(
                "Braze answered without a download url: this workspace exports to its own "
                f"bucket (object_prefix {str(answer.get('object_prefix'))[:100]!r}); "
                "Headwater reads the download link, so remove the bucket credentials from "
                "Braze's export settings or read the bucket yourself"
            )
        downloads = segments_root(self.landing)
        downloads.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=downloads, prefix=".download-") as tmp:
            path = Path(tmp) / "export.zip"
            result.bytes = await download_when_ready(
                url,
                path,
                timeout_seconds=self.config.poll_timeout_minutes * 60,
                on_bytes=lambda done, total: self.progress(result.name, "download", done, total),
                should_stop=self.stopped,
                woken=callback.woken if callback is not None else lambda: False,
            )
            async with self._land_lock:
                await asyncio.to_thread(self._land, path, result, exported_at)

    def _land(self, path: Path, result: SegmentResult, exported_at: datetime) -> None:
        parser = MembersParser(result.segment_id)
        for label, data in read_export(path):
            parser.add_file(label, data)
            self.progress(result.name, "parse", parser.lines, None)
        parsed = parser.finish()
        landed = land_segment(
            self.landing, result.segment_id, result.name, parsed.table, parsed.rejected,
            exported_at, parsed.duplicates,
        )  # fmt: skip
        result.members, result.duplicates, result.rejected = (
            landed.members, landed.duplicates, parsed.rejected,
        )  # fmt: skip
        result.entered, result.exited, result.stayed = landed.entered, landed.exited, landed.stayed
        result.path = str(landed.path)
        if parsed.errors:
            errors = [
                RowError(e.reason, row=f"{result.name}: {e.row}", field=e.field)
                for e in parsed.errors
            ]
            runs.add_row_errors(self.state, self.report.run_id, errors)
            room = SHOWN_ERRORS - len(self.report.errors)
            self.report.errors.extend(errors[: max(room, 0)])


def _short(exc: Exception) -> str:
    if isinstance(exc, BrazeRejectedError):
        return f"Braze refused the export: {exc}"
    return str(exc)


def choose_segments(listed: list[dict], wanted: str | list[str]) -> list[dict]:
    """``all``, or each name or id in ``wanted`` (a name Braze has twice exports both)."""
    if wanted == "all":
        return listed
    chosen: dict[str, dict] = {}
    missing = []
    for item in wanted:
        matches = [s for s in listed if s["id"] == item] or [
            s for s in listed if s.get("name") == item
        ]
        if not matches:
            missing.append(item)
        for segment in matches:
            chosen.setdefault(segment["id"], segment)
    if missing:
        names = ", ".join(repr(str(s.get("name"))) for s in listed[:20])
        raise FatalError(
            f"no segment named {', '.join(map(repr, missing))} in Braze"
            + (f"; it has {names}" + (" …" if len(listed) > 20 else "") if listed else "")
        )
    return list(chosen.values())


def segment_views(landing: Path) -> dict[str, str]:
    """DuckDB views over what the segment export landed: ``segments``,
    ``segment_members`` (every segment), ``segment_membership_history``, and one
    ``segment_<name>`` per segment (the segment id appended when two names collide)."""
    root = segments_root(landing)
    views: dict[str, str] = {}
    if not (root / SEGMENTS_FILE).exists():
        return views
    views["segments"] = view_sql("segments", root / SEGMENTS_FILE)
    views["segment_members"] = view_sql(
        "segment_members", root / "*" / MEMBERS_FILE, union_by_name=True
    )
    views["segment_membership_history"] = view_sql(
        "segment_membership_history", root / "*" / HISTORY_FILE, union_by_name=True
    )
    rows = read_segments(landing)
    names = [table_name(str(r["name"]), "segment_") for r in rows]
    for row, name in zip(rows, names, strict=True):
        if names.count(name) > 1 or name in views:
            name = table_name(f"{row['name']}_{row['segment_id'][:8]}", "segment_")
        path = landing / row["members_path"]
        if path.exists():
            views[name] = view_sql(name, path)
    return views


def attach_segment_views(conn, landing: Path) -> list[str]:
    """Create ``segment_views`` on a DuckDB connection; returns the view names."""
    return create_views(conn, segment_views(landing))


__all__ = [
    "ExportReport",
    "SegmentResult",
    "attach_segment_views",
    "choose_segments",
    "run_job",
    "run_segments_export",
    "segment_views",
]
