"""Which of the project's entries the console lists and can run as jobs: every sync,
audience and export, and the models that carry an ``identity:`` (the others are plain
models, not jobs). Each runs through its kind in ``headwater.schedules.jobs``."""

from __future__ import annotations

from typing import Any

from headwater.schedules.jobs import JOB_KINDS, JobKind


def project_jobs(project: Any) -> dict[str, JobKind]:
    """Job name -> its kind, in the project file's order (syncs first)."""
    found: dict[str, JobKind] = {}
    if project is None:
        return found
    for kind in JOB_KINDS:
        for name, entry in kind.entries(project).items():
            if kind.section == "models" and getattr(entry, "identity", None) is None:
                continue
            found.setdefault(name, kind)
    return found
