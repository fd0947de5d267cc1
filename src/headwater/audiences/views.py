"""What ``headwater audiences`` shows: each audience's splits (share, attribute, slots)
and committed members per split, and the membership history a person left."""

from __future__ import annotations

from dataclasses import dataclass, field

from headwater.audiences import membership
from headwater.audiences.engine import attributes, audience_config
from headwater.config import Project
from headwater.config.audiences import HOLDOUT
from headwater.models import engine_for_model
from headwater.state.audiences import load_allocation
from headwater.state.db import open_state


@dataclass
class SplitView:
    split: str
    percent: float
    attribute: str | None  # None for the holdout
    members: int | None  # None when the engine could not be read (see AudienceView.note)
    slots: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class AudienceView:
    name: str
    model: str
    destination: str
    where: str
    schedule: str | None
    splits: list[SplitView]
    note: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "model": self.model,
            "destination": self.destination,
            "where": self.where,
            "schedule": self.schedule,
            "splits": [s.__dict__ for s in self.splits],
            "note": self.note,
        }


def list_audiences(project: Project) -> list[AudienceView]:
    """Every audience with its committed sizes (read from the engine its model runs in)."""
    state = open_state(project.state_url)
    views = []
    try:
        for name, audience in project.audiences.items():
            sizes, note = _sizes(project, audience.model, name)
            names = attributes(project, name)
            slots = load_allocation(state, name).ranges
            splits = [
                SplitView(
                    split=group,
                    percent=share / 100,
                    attribute=names.get(group) if group != HOLDOUT else None,
                    members=sizes.get(group, 0) if sizes is not None else None,
                    slots=slots.get(group, []),
                )
                for group, share in audience.groups().items()
            ]
            schedule = audience.schedule.describe() if audience.schedule else None
            views.append(
                AudienceView(
                    name,
                    audience.model,
                    audience.destination,
                    audience.where,
                    schedule,
                    splits,
                    note,
                )
            )
    finally:
        state.dispose()
    return views


def _sizes(project: Project, model: str, name: str) -> tuple[dict | None, str | None]:
    """Members per split, or why they cannot be read now (a DuckDB warehouse another
    process has open, a database that is down): the listing still shows the rest."""
    try:
        engine = engine_for_model(project, model)
    except Exception as exc:
        return None, f"members unknown: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    try:
        return membership.split_sizes(engine, model, name), None
    finally:
        engine.close()


def history(project: Project, name: str, person: str | None = None, limit: int = 50):
    """The latest stays in audience ``name`` (of one person), newest first."""

    audience = audience_config(project, name)
    engine = engine_for_model(project, audience.model)
    try:
        return membership.read_history(engine, name, person, limit)
    finally:
        engine.close()
