"""The ``exports.segments`` block checked against Braze's contract (which the config layer
does not know): field names, ``braze_id`` kept, the destination named. Run at load time by
every command (``cli.loading.PROJECT_CHECKS``) and again by the export itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.braze.segment_export import DEFAULT_FIELDS, KEY_FIELD, known_field, ordered_fields
from headwater.config.exports import FieldChanges
from headwater.errors import ConfigError

Loc = tuple


def field_problems(add: list, remove: list) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for kind, names in (("add", add), ("remove", remove)):
        for i, name in enumerate(names):
            if not isinstance(name, str) or not known_field(name):
                problems.append(((kind, i), f"{str(name)[:100]!r} is not a field Braze exports"))
    if KEY_FIELD in remove:
        problems.append(
            (
                ("remove", remove.index(KEY_FIELD)),
                "braze_id cannot be removed: members are keyed by it",
            )
        )
    return problems


def resolve_fields(changes: FieldChanges) -> list[str]:
    """Headwater's defaults with the project's additions and removals, in Braze's order."""
    problems = field_problems(changes.add, changes.remove)
    if problems:
        raise ConfigError(
            [f"exports.segments.fields_to_export.{k}[{i}]: {m}" for (k, i), m in problems]
        )
    fields = (set(DEFAULT_FIELDS) | set(changes.add)) - set(changes.remove)
    return ordered_fields(fields | {KEY_FIELD})


def check_segment_exports(raw: dict[str, Any], report: Callable[[Loc, str], None]) -> None:
    """Each problem of ``exports.segments`` at its line (a ``ProjectCheck``)."""
    exports = raw.get("exports")
    block = exports.get("segments") if isinstance(exports, dict) else None
    if not isinstance(block, dict):
        return
    base = ("exports", "segments")
    destination = block.get("destination")
    destinations = raw.get("destinations")
    known = set(destinations) if isinstance(destinations, dict) else set()
    if isinstance(destination, str) and destination not in known:
        report((*base, "destination"), f"no destination named {destination!r}")
    changes = block.get("fields_to_export")
    if isinstance(changes, dict):
        add, remove = changes.get("add", []), changes.get("remove", [])
        if isinstance(add, list) and isinstance(remove, list):
            for (kind, i), message in field_problems(add, remove):
                report((*base, "fields_to_export", kind, i), message)
