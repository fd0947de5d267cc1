"""What every command shares about output: ``--json`` for scripts (a command that prints a
result prints it as JSON on stdout instead of tables; messages and errors stay on stderr)."""

from __future__ import annotations

import json
from typing import Any

import typer

JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")

# Commands that print no result to give as JSON, and why; the test that walks the command
# tree holds every other command to having --json.
NO_JSON = {
    "serve": "a long-running server: it prints one start-up line, then serves",
    "sandbox": "a long-running server: it prints one start-up line, then serves",
}


def print_json(payload: Any) -> None:
    """``payload`` as indented JSON on stdout (times and other values as strings)."""
    typer.echo(json.dumps(payload, indent=2, default=str))
