"""The YAML document with the line of every key and value, ``${ENV}`` substituted on the
nodes (a missing variable points at its line), and pydantic errors mapped back to lines.

Why the YAML is composed by hand: ``yaml.safe_load`` throws away line numbers, and an
error a user cannot find is half an error."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import ValidationError

_ENV_PATTERN = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Loc = tuple[str | int, ...]


class Document:
    """Plain data constructed from YAML nodes, plus the line of every location."""

    def __init__(self, file_label: str) -> None:
        self.file_label = file_label
        self.lines: dict[Loc, int] = {}
        self.problems: list[str] = []
        self._loader = yaml.SafeLoader("")

    def problem(self, loc: Loc, message: str) -> None:
        line = self.line_of(loc)
        where = ".".join(str(p) for p in loc)
        prefix = f"{self.file_label}:{line}: " if line else f"{self.file_label}: "
        self.problems.append(f"{prefix}{where + ': ' if where else ''}{message}")

    def line_of(self, loc: Loc) -> int | None:
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line:
                return line
        return None

    def build(self, node: yaml.Node, loc: Loc, _path: frozenset[int] = frozenset()) -> Any:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if id(node) in _path:
            self.problem(loc, "a YAML alias refers to itself")
            return None
        _path = _path | {id(node)}
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.build(key_node, (*loc, "<key>"), _path)
                if not isinstance(key, str | int | float | bool):
                    self.problem(loc, "keys must be plain strings")
                    continue
                if key in out:
                    self.lines[(*loc, key)] = key_node.start_mark.line + 1
                    self.problem((*loc, key), "duplicate key")
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*loc, key), _path)
            self.lines.pop((*loc, "<key>"), None)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i), _path) for i, item in enumerate(node.value)]
        return self._scalar(node, loc)

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if node.tag == "tag:yaml.org,2002:str" and "$" in node.value:
            value = self._substitute(node.value, loc)
            return value
        return self._loader.construct_object(node, deep=True)

    def _substitute(self, text: str, loc: Loc) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            value = os.environ.get(name)
            if value is None or (value == "" and default is not None):
                if default is not None:
                    return default
                self.problem(loc, f"environment variable {name} is not set")
                return ""
            return value

        return _ENV_PATTERN.sub(replace, text)


def pydantic_loc(data: Any, loc: tuple[str | int, ...], error_type: str) -> Loc:
    """Drop the parts of a pydantic location that are not in the YAML (union tags)."""
    out: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if (
            isinstance(current, dict)
            and part in current
            or isinstance(current, list)
            and isinstance(part, int)
            and part < len(current)
        ):
            current = current[part]
            out.append(part)
        elif i == len(loc) - 1 and error_type == "missing" and isinstance(part, str):
            out.append(part)  # a missing field: name it, point at its parent's line
        # else: a discriminator tag or validator name -- not a place in the file
    return tuple(out)


def message(error: dict[str, Any]) -> str:
    msg = error["msg"]
    if error["type"] == "missing":
        return "field required"
    if error["type"] == "extra_forbidden":
        return "unknown field (not allowed here)"
    if error["type"] == "union_tag_invalid":
        return f"unknown type; expected one of {error['ctx']['expected_tags']}"
    if error["type"] == "union_tag_not_found":
        return "field required: type"
    msg = msg.removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


Report = Callable[[Loc, str], None]
ProjectCheck = Callable[[dict[str, Any], Report], None]
"""A check of one part of the raw project file that another package owns (streams, Braze
field names); it reports each problem at its location, and ``parse_project`` adds the line."""


def located_errors(exc: ValidationError, data: Any) -> list[tuple[Loc, str]]:
    """A pydantic error's problems as (location in ``data``, message), the way this file
    reports its own, for a check that validates part of the file with its own model."""
    return [
        (pydantic_loc(data, error["loc"], error["type"]), message(error))
        for error in exc.errors(include_input=False, include_url=False)
    ]
