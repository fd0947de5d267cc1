"""Reference pages rendered from the code, so they cannot drift from it: the
``headwater.yml`` reference from the pydantic models (each field's ``description`` lives
on the model), and the CLI reference from the Typer app. The documentation site's build
hook (``docs/hooks.py``) puts them where a page says ``<!-- reference: NAME -->``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

# --------------------------------------------------------------------------- headwater.yml


@dataclass
class FieldRow:
    """One line of the project-file reference."""

    path: str
    type: str
    default: str
    description: str


def _type_name(annotation: object) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in args):
            return "mapping (by `type`, below)"
        names = [_type_name(a) for a in args if a is not type(None)]
        optional = type(None) in args
        return " \\| ".join(names) + (" (optional)" if optional else "")
    if origin is dict:
        return f"map of name → {_type_name(args[1])}"
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if annotation is SecretStr:
        return "secret string"
    if annotation is typing.Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (below)"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(
        annotation,  # type: ignore[call-overload]
        getattr(annotation, "__name__", str(annotation)),
    )


_BOUNDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", "≥"),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "≤"),
    (annotated_types.MinLen, "min_length", "length ≥"),
    (annotated_types.MaxLen, "max_length", "length ≤"),
)


def _constraints(field: FieldInfo) -> str:
    parts = []
    for item in field.metadata:
        for kind, attr, sign in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attr)}")
    return f" ({', '.join(parts)})" if parts else ""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "see below"
        return f"`{value!r}`" if value else "empty"
    if field.default is PydanticUndefined:
        return "**required**"
    if field.default is None:
        return "not set"
    value = field.default.value if isinstance(field.default, Enum) else field.default
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return f"`{value!r}`"
    return f"`{value:,}`" if isinstance(value, int) else f"`{value:g}`"


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """Models a field holds directly, or as the values of a map or items of a list."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list):
        return [m for a in typing.get_args(annotation) for m in _models_in(a)]
    if origin is dict:
        return _models_in(typing.get_args(annotation)[1])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _child_path(path: str, annotation: object) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _child_path(path, typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _child_path(path, inner[0]) if len(inner) == 1 else path
    if origin is dict:
        return f"{path}.<name>"
    if origin is list:
        return f"{path}[]"
    return path


Section = tuple[str, type[BaseModel], list[FieldRow]]


def model_rows(model: type[BaseModel], path: str) -> Iterator[Section]:
    """Sections of rows: this model's own fields, then each nested model's, depth first."""
    rows: list[FieldRow] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        field_path = f"{path}.{name}" if path else name
        rows.append(
            FieldRow(
                path=field_path,
                type=_type_name(field.annotation) + _constraints(field),
                default=_default(field),
                description=field.description or "",
            )
        )
        for child in _models_in(field.annotation):
            nested.append((_child_path(field_path, field.annotation), child))
    yield path, model, rows
    for child_path, child in nested:
        yield from model_rows(child, child_path)


def _table(rows: list[FieldRow]) -> list[str]:
    lines = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for row in rows:
        description = row.description.replace("|", "\\|")
        lines.append(f"| `{row.path}` | {row.type} | {row.default} | {description} |")
    return lines


def _section_title(path: str, model: type[BaseModel]) -> str:
    """Name the ``type`` of a model that is one variant of a union (its ``type`` is a
    required or single-valued literal), not of one whose ``type`` is an ordinary choice."""
    literal = model.model_fields.get("type")
    if literal is not None and typing.get_origin(literal.annotation) is typing.Literal:
        kinds = typing.get_args(literal.annotation)
        if len(kinds) > 1 and not literal.is_required():
            return f"`{path}`"
        kinds = " / ".join(str(a) for a in kinds)
        return f"`{path}` (type `{kinds}`)"
    return f"`{path}`"


def project_file_sections() -> list[Section]:
    """Every section of headwater.yml with its fields, in the order a reader meets them."""
    from headwater.config import Project

    sections: list[Section] = []
    seen: set[tuple[str, type[BaseModel]]] = set()
    for root, root_path in [(Project, "")]:
        for path, model, rows in model_rows(root, root_path):
            if (path, model) not in seen:
                seen.add((path, model))
                sections.append((path, model, rows))
    return sections


def render_project_file_reference() -> str:
    out: list[str] = []
    for path, model, rows in project_file_sections():
        title = "Top level" if not path else _section_title(path, model)
        out += [f"### {title}", ""]
        doc = (model.__dict__.get("__doc__") or "").strip().replace("``", "`")
        if doc and path:
            out += [" ".join(doc.split()), ""]
        out += _table(rows)
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- CLI


# Typer carries its own copy of click, so commands and parameters are told apart by
# what they have rather than by click's classes.
def _is_argument(param: Any) -> bool:
    return param.param_type_name == "argument"


def _subcommands(command: Any) -> dict[str, Any]:
    return dict(getattr(command, "commands", None) or {})


def _option_names(param: Any) -> str:
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    return names


def _param_default(param: Any) -> str:
    if _is_argument(param):
        return "**required**" if param.required else ""
    if param.required:
        return "**required**"
    default = param.default
    if isinstance(default, Enum):
        default = default.value
    if default is None or default == () or default == []:
        return ""
    if getattr(param, "is_flag", False):
        return "" if default is False else "on"
    return f"`{default}`"


def cli_commands(command: Any, prefix: str = "headwater") -> Iterator[tuple[str, Any]]:
    """Every command and group of the CLI with its full name, depth first."""
    yield prefix, command
    if _subcommands(command):
        for name, sub in _subcommands(command).items():
            yield from cli_commands(sub, f"{prefix} {name}")


def render_cli_reference() -> str:
    import typer.main

    from headwater.cli.app import app

    root = typer.main.get_command(app)
    out: list[str] = []
    for name, command in cli_commands(root):
        if command is root:
            continue
        out += [f"### `{name}`", ""]
        help_text = (command.help or "").strip()
        if help_text:
            out += [help_text, ""]
        usage = " ".join(
            ["[OPTIONS]"]
            + [
                p.name.upper() + ("..." if p.nargs == -1 else "")
                for p in command.params
                if _is_argument(p)
            ]
            + (["COMMAND [ARGS]..."] if _subcommands(command) else [])
        )
        out += ["```text", f"{name} {usage}".rstrip(), "```", ""]
        if _subcommands(command):
            subs = ", ".join(f"`{name} {s}`" for s in _subcommands(command))
            out += [f"Subcommands: {subs}.", ""]
        params = [p for p in command.params if not getattr(p, "hidden", False)]
        params = [p for p in params if p.name not in ("help", "version")]
        if params:
            out += ["| argument / option | default | meaning |", "| --- | --- | --- |"]
            for param in params:
                label = f"`{param.name.upper()}`" if _is_argument(param) else _option_names(param)
                meaning = getattr(param, "help", None) or ""
                envvar = getattr(param, "envvar", None)
                if envvar and getattr(param, "show_envvar", False):
                    meaning += f" Environment: `{envvar}`."
                if getattr(param, "multiple", False) and "repeat" not in meaning.lower():
                    meaning += " Repeatable."
                out.append(f"| {label} | {_param_default(param)} | {meaning.strip()} |")
            out.append("")
    return "\n".join(out)


RENDERERS = {
    "headwater.yml": render_project_file_reference,
    "cli": render_cli_reference,
}
