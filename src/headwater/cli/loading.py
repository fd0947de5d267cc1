"""How every command reads the project file: with every check, those of the parts above
the config layer (Braze field names of sync mappings) included, so ``validate`` reports all
that ``serve`` or ``sync`` would refuse, at once and each at its line."""

from __future__ import annotations

from pathlib import Path

from headwater.audiences.checks import check_audience_attributes
from headwater.braze.budget import check_rate_limits
from headwater.config import Project, load_project
from headwater.exports.segments_checks import check_segment_exports
from headwater.schedules.checks import check_job_names, check_schedules
from headwater.syncs.mapping import check_sync_mappings

PROJECT_CHECKS = (
    check_sync_mappings,
    check_schedules,
    check_job_names,
    check_rate_limits,
    check_audience_attributes,
    check_segment_exports,
)


def load_checked(path: str | Path | None = None) -> Project:
    """``load_project`` with every check; raises ConfigError listing every problem."""
    return load_project(path, checks=PROJECT_CHECKS)
