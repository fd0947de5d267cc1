"""The root ``headwater`` command. Each command group lives in its own module and
registers itself here through ``register(app)``."""

from __future__ import annotations

import typer

from headwater import __version__
from headwater.cli import project, sandbox, serve, sync

app = typer.Typer(
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


for module in (sandbox, project, sync, serve):
    module.register(app)


def main() -> None:
    app()
