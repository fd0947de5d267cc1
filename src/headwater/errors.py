"""The one error tree every part of Headwater raises from.

* HeadwaterError
  x ConfigError        -- the project file or environment is wrong; nothing ran
  x FatalError         -- stop this run: retrying the same thing will fail the same way
  x RetriableError     -- a transient failure (429, 5xx, timeout); try again later
  x RowError           -- one input row/object is bad; report it, the rest go on
"""

from __future__ import annotations


class HeadwaterError(Exception):
    """Base of every error Headwater raises on purpose."""


class ConfigError(HeadwaterError):
    """The configuration is invalid; carries every problem found, each with its location."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class FatalError(HeadwaterError):
    """A failure that a retry cannot fix (bad key, missing permission, malformed request)."""


class RetriableError(HeadwaterError):
    """A transient failure; the caller backs off and tries again."""


class RowError(HeadwaterError):
    """One row or object is bad. Carries where it came from so a user can find it."""

    def __init__(
        self, message: str, *, row: object = None, field: str | None = None, value: object = None
    ) -> None:
        super().__init__(message)
        self.reason = message
        self.row = row
        self.field = field
        self.value = value  # the offending value, shown beside the reason (None: not known)

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            row = str(self.row)
            where.append(row if row.startswith("row ") else f"row {row}")
        if self.field:
            where.append(f"field {self.field!r}")
        return (f"{', '.join(where)}: " if where else "") + self.reason
