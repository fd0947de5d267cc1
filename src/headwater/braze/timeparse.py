"""Braze's accepted time formats (ISO 8601 and a handful of others), parsed to aware UTC.

A value without a zone is UTC; a date alone is midnight UTC. Years outside 0..3000 are not
times (Braze stores them as strings), so they parse to None here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MAX_TIME_YEAR = 3000

_COLON_MILLIS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}):(\d{3})(Z|[+-]\d{2}:?\d{2})?$")
_SLASH_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_LOOKS_LIKE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}/\d{1,2}/\d{4}$|^[A-Z][a-z]{2} \d")
_LEGACY_FORMATS = ("%a %m %d %H:%M:%S.%z %Y", "%a %b %d %H:%M:%S %z %Y")


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_braze_time(value: object) -> datetime | None:
    """Parse any of Braze's accepted time strings; None when it is not one."""
    dt = _parse(value)
    return None if dt is None else _aware(dt)


def is_braze_time(value: object) -> bool:
    """Whether ``value`` is a time string Braze accepts (validation needs no UTC value)."""
    return _parse(value) is not None


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
    if dt is None or dt.year > MAX_TIME_YEAR:
        return None
    return dt


def format_braze_time(dt: datetime) -> str:
    """The one way times are written back out: ``2024-05-02T10:00:00.000Z``."""
    dt = _aware(dt)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def format_export_time(dt: datetime) -> str:
    """Braze's export shape for ``created_at``: ``2020-07-10 15:00:00.000 UTC``."""
    dt = _aware(dt)
    return dt.strftime("%Y-%m-%d %H:%M:%S.") + f"{dt.microsecond // 1000:03d} UTC"
