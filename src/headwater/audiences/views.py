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
    members: int
    slots: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class AudienceView:
    name: str
    model: str
    destination: str
    where: str
    schedule: str | None
    splits: list[SplitView]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "model": self.model,
            "destination": self.destination,
            "where": self.where,
            "schedule": self.schedule,
            "splits": [s.__dict__ for s in self.splits],
        }


def list_audiences(project: Project) -> list[AudienceView]:
    """Every audience with its committed sizes (read from the engine its model runs in)."""
    state = open_state(project.state_url)
    views = []
    try:
        for name, audience in project.audiences.items():
            engine = engine_for_model(project, audience.model)
            try:
                sizes = membership.split_sizes(engine, audience.model, name)
            finally:
                engine.close()
            names = attributes(project, name)
            slots = load_allocation(state, name).ranges
            splits = [
                SplitView(
                    split=group,
                    percent=share / 100,
                    attribute=names.get(group) if group != HOLDOUT else None,
                    members=sizes.get(group, 0),
                    slots=slots.get(group, []),
                )
                for group, share in audience.groups().items()
            ]
            schedule = audience.schedule.describe() if audience.schedule else None
            views.append(
                AudienceView(
                    name, audience.model, audience.destination, audience.where, schedule, splits
                )
            )
    finally:
        state.dispose()
    return views


def history(project: Project, name: str, person: str | None = None, limit: int = 50):
    """The latest stays in audience ``name`` (of one person), newest first."""

    audience = audience_config(project, name)
    engine = engine_for_model(project, audience.model)
    try:
        return membership.read_history(engine, name, person, limit)
    finally:
        engine.close()
