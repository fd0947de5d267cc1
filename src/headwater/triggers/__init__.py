"""Triggers: campaigns, canvases or profile updates sent when a person enters an
audience or a stream event matches, each entry exactly once (``fire``)."""

from headwater.triggers.events import fire_on_events
from headwater.triggers.fire import (
    TriggerOutcome,
    TriggerReport,
    fire_entries,
    fire_on_audience_entry,
)

__all__ = [
    "TriggerOutcome",
    "TriggerReport",
    "fire_entries",
    "fire_on_audience_entry",
    "fire_on_events",
]
