"""Partner values that must be text (identifiers, event names, partner event ids), and
partner values quoted in error messages.

Python's ``str()`` of an object or a list is Python's own rendering (``"{'a': 1}"``), never
what a partner meant; such values are refused with an error naming the field instead.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from headwater.errors import RowError

SHOWN_VALUE_CHARS = 60  # how much of a refused value an error message quotes


def shown(value: Any) -> str:
    """A partner's value quoted in an error, as JSON and cut short (it may be huge)."""
    try:
        text = orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):  # integers past 64 bits, nesting past 254
        text = repr(value)[: SHOWN_VALUE_CHARS * 2]
    return text if len(text) <= SHOWN_VALUE_CHARS else text[: SHOWN_VALUE_CHARS - 3] + "..."


def text_of(value: Any, field: str, *, row: object = None) -> str:
    """An identifier or a name as text. Partners send strings or numbers; anything else
    (an object, a list, true) would become Python's own rendering, so it is refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise RowError(f"must be a string or a number, not {shown(value)}", row=row, field=field)
