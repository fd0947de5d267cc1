"""What only the whole file can say about schedules: an ``after:`` must name a job that
exists, and ``after:`` chains must not loop (a loop would never start, silently)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from headwater.config import Report
from headwater.schedules.jobs import JOB_SECTIONS


def _job_entries(raw: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every entry that is a job, with where its ``schedule:`` sits: a model is a job only
    with ``identity:``, and keeps its schedule there."""
    for section in JOB_SECTIONS:
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        for name, spec in entries.items():
            if not (isinstance(name, str) and isinstance(spec, dict)):
                continue
            if section != "models":
                yield name, spec | {"__loc__": (section, name)}
            elif isinstance(spec.get("identity"), dict):
                yield name, spec["identity"] | {"__loc__": (section, name, "identity")}


def _jobs(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(_job_entries(raw))


def _after(spec: dict[str, Any]) -> Any:
    schedule = spec.get("schedule")
    return schedule.get("after") if isinstance(schedule, dict) else None


def check_job_names(raw: dict[str, Any], report: Report) -> None:
    """``load_project(checks=...)``: runs, slots, ``after:`` and pause/resume address a job
    by its name alone, so two jobs may not share one across sections."""
    first: dict[str, tuple] = {}
    for name, spec in _job_entries(raw):
        loc = spec["__loc__"]
        if name not in first:
            first[name] = loc
            continue
        report(
            loc[:2],
            f"{loc[0]}.{name} has the name of the job {first[name][0]}.{name}: runs and "
            "schedules address jobs by name, so give one of them another name",
        )


def check_schedules(raw: dict[str, Any], report: Report) -> None:
    """``load_project(checks=...)``: unknown ``after:`` jobs and ``after:`` cycles, each
    at the line of the ``after:`` that closes it."""
    jobs = _jobs(raw)
    for name, spec in jobs.items():
        upstream = _after(spec)
        if not isinstance(upstream, str):
            continue
        loc = (*spec["__loc__"], "schedule", "after")
        if upstream == name:
            report(loc, "a job cannot run after itself")
        elif upstream not in jobs:
            known = ", ".join(sorted(jobs)) or "none"
            report(loc, f"no job named {upstream!r} to run after (jobs: {known})")
    reported: set[str] = set()
    for name in jobs:
        chain = [name]
        current = _after(jobs[name])
        while isinstance(current, str) and current in jobs and current != chain[-1]:
            if current in chain:
                cycle = chain[chain.index(current) :]
                if current == name and not reported & set(cycle):
                    reported.update(cycle)
                    spec = jobs[name]
                    report(
                        (*spec["__loc__"], "schedule", "after"),
                        "after: makes a cycle that would never run: "
                        + " -> ".join([*cycle, current]),
                    )
                break
            chain.append(current)
            current = _after(jobs[current])
