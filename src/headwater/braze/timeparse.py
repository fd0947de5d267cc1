"""Braze's accepted time formats (ISO 8601 and a handful of others), parsed to aware UTC.

A value without a zone is UTC; a date alone is midnight UTC. Years outside 0..3000 are not
times (Braze stores them as strings), so they parse to None here. The year is checked in
UTC: ``0001-01-01T00:00:00+01:00`` falls before year 1 and is not a time either.

Validation (``headwater.braze.track``) and application (``headwater.braze.profile``) both
call ``parse_braze_time``, so whatever the contract accepts can always be applied: a value
that validated cannot fail later, after its neighbours in a request were already applied.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

MAX_TIME_YEAR = 3000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIRST = datetime(1, 1, 1, tzinfo=UTC)
_LAST = datetime(MAX_TIME_YEAR, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
# The epoch seconds a Braze time can hold (years 1 to 3000, UTC).
MIN_EPOCH_SECONDS = (_FIRST - _EPOCH).total_seconds()
MAX_EPOCH_SECONDS = (_LAST - _EPOCH).total_seconds()

_COLON_MILLIS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}):(\d{3})(Z|[+-]\d{2}:?\d{2})?$")
_SLASH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_LOOKS_LIKE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}/\d{1,2}/\d{4}$|^[A-Z][a-z]{2} \d")
_LEGACY_FORMATS = ("%a %m %d %H:%M:%S.%z %Y", "%a %b %d %H:%M:%S %z %Y")


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_braze_time(value: object) -> datetime | None:
    """Parse any of Braze's accepted time strings to aware UTC; None when it is not one
    (never raises, whatever the value)."""
    dt = _parse(value)
    if dt is None:
        return None
    try:
        dt = _aware(dt)
    except OverflowError:  # the zone moved it before year 1 (or past 9999)
        return None
    return dt if dt.year <= MAX_TIME_YEAR else None


def is_braze_time(value: object) -> bool:
    """Whether ``value`` is a time string Braze accepts: exactly the values
    ``parse_braze_time`` turns into a time."""
    return parse_braze_time(value) is not None


def parse_epoch_seconds(value: object) -> datetime | None:
    """UTC epoch seconds (an int or float, as partners send them) as an aware UTC time;
    None for anything that is not a finite number of a time Braze holds (years 1..3000).
    Never raises: ``datetime.fromtimestamp`` raises OverflowError, ValueError or OSError
    for such values, depending on the platform."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not MIN_EPOCH_SECONDS <= value <= MAX_EPOCH_SECONDS:
        return None
    return _EPOCH + timedelta(seconds=value)


def looks_like_time(value: str) -> bool:
    """Whether a string is shaped like one of Braze's time formats (so a value that still
    fails to parse is out of range, or an impossible date, rather than not a time)."""
    return bool(_LOOKS_LIKE_DATE.match(value.strip()))


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or not 8 <= len(value) <= 40:
        return None
    if not _LOOKS_LIKE_DATE.match(value):
        return None
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = None
    if dt is None and (m := _COLON_MILLIS.match(text)):
        try:
            dt = datetime.fromisoformat(f"{m[1]}.{m[2]}{m[3] or ''}")
        except ValueError:
            dt = None
    if dt is None and (m := _SLASH_DATE.match(text)):
        try:
            dt = datetime(int(m[3]), int(m[1]), int(m[2]))
        except ValueError:
            return None
    if dt is None:
        for fmt in _LEGACY_FORMATS:
            try:
                dt = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    return dt


def _stamp(dt: datetime, between: str) -> str:
    # Written out rather than strftime: "%Y" drops the leading zeros of years before
    # 1000 on Linux, and "1-01-01" would not parse back.
    dt = _aware(dt)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}{between}"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{dt.microsecond // 1000:03d}"
    )


def format_braze_time(dt: datetime) -> str:
    """The one way times are written back out: ``2024-05-02T10:00:00.000Z``."""
    return _stamp(dt, "T") + "Z"


def format_export_time(dt: datetime) -> str:
    """Braze's export shape for ``created_at``: ``2020-07-10 15:00:00.000 UTC``."""
    return _stamp(dt, " ") + " UTC"
