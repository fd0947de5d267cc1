"""Every kind of job ``headwater serve`` can schedule, in one table: where its entries live
in ``headwater.yml``, which of them carry a ``schedule:``, and how one runs.

A job's name is its entry's name; names are unique across sections (``check_job_names``),
so runs, slots, ``after:`` and pause/resume all address a job by name alone. Each kind's
runner is imported when it runs, so a kind costs nothing until it is used."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from headwater.config import Schedule


@dataclass(frozen=True)
class JobResult:
    """What running a job left: its run id (None if it never started) and status."""

    run_id: int | None
    status: str
    error: str | None = None


RunJob = Callable[[str], JobResult]  # runs one job to the end, in a worker thread


@dataclass(frozen=True)
class JobKind:
    section: str  # the headwater.yml section holding the entries
    runner: str  # "module:function" called as fn(project, name, stop=event)

    def entries(self, project: Any) -> dict[str, Any]:
        """The section's entries by job name; a job left out of the section (``exports``
        holds its jobs as optional fields: None) is not a job."""
        found = dict(getattr(project, self.section, None) or {})
        return {name: entry for name, entry in found.items() if entry is not None}

    def scheduled(self, project: Any) -> dict[str, Schedule]:
        found = {}
        for name, entry in self.entries(project).items():
            schedule = _schedule_of(entry)
            if schedule is not None:
                found[name] = schedule
        return found

    def run(self, project: Any, name: str, stop: threading.Event | None) -> JobResult:
        module, function = self.runner.split(":")
        report = getattr(importlib.import_module(module), function)(project, name, stop=stop)
        return JobResult(report.run_id, report.status, report.error)


def _schedule_of(entry: Any) -> Schedule | None:
    """An entry's ``schedule:``; an identity model keeps it under ``identity:``."""
    schedule = getattr(entry, "schedule", None)
    if schedule is None and getattr(entry, "identity", None) is not None:
        schedule = getattr(entry.identity, "schedule", None)
    return schedule


JOB_KINDS: tuple[JobKind, ...] = (
    JobKind("syncs", "headwater.syncs.engine:run_job"),
    JobKind("models", "headwater.syncs.merges:run_identity_job"),
    JobKind("audiences", "headwater.audiences:run_job"),
    JobKind("exports", "headwater.exports:run_job"),
)
JOB_SECTIONS = tuple(kind.section for kind in JOB_KINDS)


def _kinds_by_job(project: Any) -> Iterator[tuple[str, JobKind]]:
    for kind in JOB_KINDS:
        for name in kind.scheduled(project):
            yield name, kind


def jobs_of(project: Any) -> dict[str, Schedule]:
    """The project's scheduled jobs, of every kind, by name."""
    jobs: dict[str, Schedule] = {}
    for kind in JOB_KINDS:
        jobs.update(kind.scheduled(project))
    return jobs


def job_runner(project: Any, cancel: threading.Event | None = None) -> RunJob:
    """Run a job by name the way its own command does, and report its run; ``cancel`` (the
    scheduler's) stops it early, recorded interrupted."""
    kinds = dict(_kinds_by_job(project))

    def run(name: str) -> JobResult:
        return kinds[name].run(project, name, cancel)

    return run
