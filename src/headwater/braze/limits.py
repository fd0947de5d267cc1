"""Braze's documented per-request limits, in one place, with their units in their names."""

from __future__ import annotations

from enum import StrEnum

MAX_OBJECTS_PER_REQUEST = 75
MAX_IDS_PER_REQUEST = 50
MAX_STRING_LENGTH = 255
MAX_EXTERNAL_ID_BYTES = 987
MAX_BODY_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_ARRAY_ITEMS = 500
MAX_NESTED_ATTRIBUTE_BYTES = 100 * 1024
MAX_EVENT_PROPERTIES_BYTES = 100 * 1024
MAX_PURCHASE_QUANTITY = 100
MAX_TRIGGER_PROPERTIES_BYTES = 50 * 1024

TRACK_ARRAYS = ("attributes", "events", "purchases")


class BatchPolicy(StrEnum):
    """How Braze counts the 75-object cap of /users/track.

    COMBINED is the current rule (75 across all three arrays); PER_KIND is the legacy
    contract rule (75 in each array, 225 at most).
    """

    COMBINED = "combined"
    PER_KIND = "per_kind"


def objects_over_limit(counts: dict[str, int], policy: BatchPolicy) -> bool:
    """True when a /users/track body with these array sizes breaks the policy's cap."""
    if policy is BatchPolicy.COMBINED:
        return sum(counts.values()) > MAX_OBJECTS_PER_REQUEST
    return any(n > MAX_OBJECTS_PER_REQUEST for n in counts.values())
