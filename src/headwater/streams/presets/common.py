"""Small conversions every preset needs: partner timestamps to Braze times, and property
values Braze accepts."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from headwater.braze.limits import MAX_STRING_LENGTH
from headwater.braze.timeparse import format_braze_time, parse_braze_time, parse_epoch_seconds
from headwater.errors import RowError
from headwater.streams.text import shown

EPOCH_MILLIS_THRESHOLD = 10**11  # larger epoch numbers are milliseconds
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # the integers JSON (and orjson) carry


def braze_time(value: Any, field: str, *, row: object = None, now: datetime | None = None) -> str:
    """A partner's time (ISO string, epoch seconds or milliseconds) as a Braze time; the
    current time when the partner sent none. Times outside years 1..3000 (Braze's range)
    are a RowError naming ``field``, never an overflow."""
    if value is None or value == "":
        return format_braze_time(now or datetime.now(UTC))
    parsed = _partner_time(value)
    if parsed is None:
        raise RowError(f"{shown(value)} is not a time Braze accepts", row=row, field=field)
    return format_braze_time(parsed)


def _partner_time(value: Any) -> datetime | None:
    """Epoch seconds or milliseconds (a number, or digits in a string) or a Braze time
    string; None for anything outside what Braze holds. The contract's parsers never raise."""
    if isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit():
        try:
            value = float(value)
        except OverflowError:
            return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, int) and abs(value) > 2**63:
            return None
        return parse_epoch_seconds(value / 1000 if abs(value) > EPOCH_MILLIS_THRESHOLD else value)
    return parse_braze_time(value)


def property_value(value: Any) -> Any:
    """Keep what Braze takes as a property; long strings are cut to Braze's limit."""
    if isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
        return value[:MAX_STRING_LENGTH]
    return value


def number_or_text(value: Any) -> Any:
    """Partners send amounts as "10.00"; Braze segments on numbers. A number JSON cannot
    carry (beyond 64 bits as an integer, infinite as a float) stays text."""
    if isinstance(value, str):
        try:
            number = float(value) if "." in value else int(value)
        except ValueError:
            return value
        if isinstance(number, int) and not INT64_MIN <= number <= INT64_MAX:
            return value
        return number if math.isfinite(number) else value
    return value


def snake(name: str) -> str:
    out = []
    for ch in name.strip():
        if ch.isalnum():
            out.append(ch.lower())
        elif out and out[-1] != "_":
            out.append("_")
    return "".join(out).strip("_")
