"""The root ``headwater`` command. Each command group lives in its own module and
registers itself here through ``register(app)``."""

from __future__ import annotations

import inspect

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from headwater import __version__
from headwater.cli import (
    audiences,
    currents,
    exports,
    identity,
    project,
    sandbox,
    schedules,
    serve,
    streams,
    sync,
    triggers,
    users,
)
from headwater.errors import ConfigError, HeadwaterError


class HeadwaterGroup(TyperGroup):
    """Every command's errors-on-purpose (a wrong project file, a store or server that
    cannot be reached) end the same way: one line per problem on stderr, no traceback,
    exit 2 for the configuration and 1 for the rest. Bugs keep their traceback."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        _reflow_help(self)

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except HeadwaterError as exc:
            err = Console(stderr=True, soft_wrap=True, highlight=False)
            problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
            for problem in problems:
                err.print("[red]error:[/] ", end="")
                err.print(problem, markup=False)
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None


def _reflow(text: str) -> str:
    """Docstrings wrap at the source's width; Rich's help keeps their line breaks, which
    broke sentences mid-line in every listing. Paragraphs are joined into one line each
    (Rich wraps them to the terminal), except those laid out on purpose: indented lines,
    lists, examples."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p
        if any(line[:1] in (" ", "-", "*", "$", "\b") for line in p.splitlines()[1:])
        else " ".join(p.split())
        for p in paragraphs
    )


def _reflow_help(command: click.Command) -> None:
    """Reflow the help of ``command`` and of every command below it."""
    if command.help:
        command.help = _reflow(command.help)
    for sub in getattr(command, "commands", {}).values():
        _reflow_help(sub)


app = typer.Typer(
    cls=HeadwaterGroup,
    name="headwater",
    help="Customer data activation hub for Braze.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"headwater {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    """Customer data activation hub for Braze."""


COMMANDS = (
    sandbox, project, sync, identity, serve, schedules, streams, users, audiences, triggers,
    exports, currents,
)  # fmt: skip
for module in COMMANDS:
    module.register(app)


def main() -> None:
    app()
