"""Help listings read as sentences: a command's description is not broken where its
docstring happened to wrap in the source."""

from __future__ import annotations

import click
import typer

from headwater.cli.app import app


def _commands(command: click.Command, path: str = "headwater"):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def test_every_command_description_is_one_paragraph_per_line():
    root = typer.main.get_command(app)
    broken = [
        path
        for path, command in _commands(root)
        if command.help and "\n" in command.help.split("\n\n")[0]
    ]
    assert len(list(_commands(root))) > 40 and broken == []
