"""Braze -> the landing directory: segment exports (``segments``) and the Currents
receiver. ``run_job`` is the scheduler's entry point for the ``exports:`` section (job
``segments``); each job's module is imported when it runs."""

from __future__ import annotations

import threading
from typing import Any


def run_job(project: Any, name: str, *, stop: threading.Event | None = None) -> Any:
    """Run export job ``name`` once (``segments``); returns a report with ``run_id``,
    ``status`` and ``error``."""
    from headwater.exports import segments

    return segments.run_job(project, name, stop=stop)


__all__ = ["run_job"]
