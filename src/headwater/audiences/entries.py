"""What an audience run hands to ``headwater.triggers`` for each split people entered.

``headwater.triggers.fire_on_audience_entry(project, audience, split, entries, stop=...)``
is called at the end of a run with the entries Braze accepted in it (the holdout's are
never included), one call per split. Triggers may import this type; this package never
needs triggers to exist (the call is skipped while it offers no such function)."""

from __future__ import annotations

from typing import Any, TypedDict


class AudienceEntry(TypedDict):
    person_id: str  # the model's primary key, as text
    identifier: dict[str, Any]  # the Braze identifier the attribute was sent to
    record: dict[str, Any]  # the person's model row when they entered
    entered_at: str  # which run they entered in ("run <id>"): the triggers' entry identity
