"""Audiences: a SQL condition over a model, synced as boolean attributes per audience and
split; only entries and exits are sent, membership history kept."""

from headwater.audiences.engine import (
    AudienceReport,
    attributes,
    run_audience,
    run_audiences,
    run_job,
)
from headwater.audiences.entries import AudienceEntry

__all__ = [
    "AudienceEntry",
    "AudienceReport",
    "attributes",
    "run_audience",
    "run_audiences",
    "run_job",
]
