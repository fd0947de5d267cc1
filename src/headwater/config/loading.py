"""Reading a project file: every problem at once, each with its line, sorted by line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from headwater.config.audiences import check_audiences
from headwater.config.base import PROJECT_FILE
from headwater.config.checks import check_names as _check_names
from headwater.config.checks import check_removals as _check_removals
from headwater.config.checks import cross_check as _cross_check
from headwater.config.document import Document as _Document
from headwater.config.document import ProjectCheck
from headwater.config.document import message as _message
from headwater.config.document import pydantic_loc as _pydantic_loc
from headwater.config.project import Project
from headwater.config.streams import check_streams
from headwater.errors import ConfigError


def parse_project(
    text: str,
    *,
    file_label: str = PROJECT_FILE,
    root: Path | None = None,
    checks: Iterable[ProjectCheck] = (),
) -> Project:
    """Validate project-file text. Raises ConfigError carrying every problem found, those
    of ``checks`` included."""
    doc = _Document(file_label)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(
            [f"{file_label}{line}: not valid YAML: {exc.problem or exc.context}"]
        ) from None
    raw = {} if node is None else doc.build(node, ())
    if not isinstance(raw, dict):
        raise ConfigError([f"{file_label}:1: the project file must be a mapping of sections"])

    project: Project | None = None
    try:
        project = Project.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            doc.problem(_pydantic_loc(raw, error["loc"], error["type"]), _message(error))
    _check_names(raw, doc)
    _cross_check(raw, doc)
    _check_removals(raw, doc)
    check_streams(raw, doc.problem)
    check_audiences(raw, doc.problem)
    for check in checks:
        check(raw, doc.problem)

    if doc.problems or project is None:
        raise ConfigError(_sorted_by_line(doc.problems))
    project._root = (root or Path.cwd()).resolve()
    return project


def _sorted_by_line(problems: list[str]) -> list[str]:
    def key(p: str) -> tuple[int, str]:
        m = re.match(r"[^:]+:(\d+):", p)
        return (int(m.group(1)) if m else 0, p)

    return sorted(dict.fromkeys(problems), key=key)


def find_project_file(path: str | Path | None = None) -> Path:
    """``path`` may be the project directory or the file itself (default: the cwd)."""
    p = Path(path) if path is not None else Path.cwd()
    if p.is_dir():
        p = p / PROJECT_FILE
    return p


def load_project(path: str | Path | None = None, *, checks: Iterable[ProjectCheck] = ()) -> Project:
    """Read, substitute ``${ENV}``, validate and cross-check a project file."""
    file = find_project_file(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no project file here (run `headwater init DIR`)"]) from None
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror}"]) from None
    project = parse_project(text, file_label=file.name, root=file.parent, checks=checks)
    project._file = file.resolve()
    return project
