"""What only the whole file can say about schedules: an ``after:`` must name a job that
exists, and ``after:`` chains must not loop (a loop would never start, silently)."""

from __future__ import annotations

from typing import Any

from headwater.config import Report

JOB_SECTIONS = ("syncs",)  # sections whose entries can be scheduled (exports etc. join later)


def _jobs(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    jobs: dict[str, dict[str, Any]] = {}
    for section in JOB_SECTIONS:
        entries = raw.get(section)
        if isinstance(entries, dict):
            for name, spec in entries.items():
                if isinstance(name, str) and isinstance(spec, dict):
                    jobs[name] = spec | {"__section__": section}
    return jobs


def _after(spec: dict[str, Any]) -> Any:
    schedule = spec.get("schedule")
    return schedule.get("after") if isinstance(schedule, dict) else None


def check_schedules(raw: dict[str, Any], report: Report) -> None:
    """``load_project(checks=...)``: unknown ``after:`` jobs and ``after:`` cycles, each
    at the line of the ``after:`` that closes it."""
    jobs = _jobs(raw)
    for name, spec in jobs.items():
        upstream = _after(spec)
        if not isinstance(upstream, str):
            continue
        loc = (spec["__section__"], name, "schedule", "after")
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
                        (spec["__section__"], name, "schedule", "after"),
                        "after: makes a cycle that would never run: "
                        + " -> ".join([*cycle, current]),
                    )
                break
            chain.append(current)
            current = _after(jobs[current])
