"""``headwater streams``: which streams are paused; ``pause`` and ``resume`` one. A paused
stream still accepts events (partners see no change); delivery holds them in the outbox
until ``resume``, then sends them in order. Kept in the state store, so a pause holds
across restarts and for every serve process."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from headwater.cli.output import JSON_OPTION, print_json
from headwater.cli.sync import PROJECT_OPTION, _load

streams_app = typer.Typer(
    help="Streams: pause and resume delivery (intake goes on).", invoke_without_command=True
)
GATEWAY = "gateway"  # every partner key of /users/track, as in the console


def _open(project_dir: Path, console: Console):
    from headwater.state.db import open_state

    project = _load(project_dir, console)
    return [GATEWAY, *project.streams], open_state(project.state_url)


def _known(name: str, names: list[str]) -> None:
    from headwater.errors import ConfigError

    if name not in names:
        raise ConfigError(f"no stream named {name!r} (streams: {', '.join(names)})")


@streams_app.callback()
def streams_list(
    ctx: typer.Context, project_dir: Path = PROJECT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """List the streams and whether each is paused."""
    if ctx.invoked_subcommand is not None:
        return
    from headwater.state.pauses import list_pauses

    console = Console()
    names, state = _open(project_dir, console)
    paused = list_pauses(state)
    entries = [
        {
            "stream": n,
            "paused": n in paused,
            "paused_at": paused[n].paused_at.isoformat() if n in paused else None,
        }
        for n in names
    ]
    if as_json:
        print_json(entries)
        return
    for e in entries:
        state_text = f"paused since {e['paused_at']}" if e["paused"] else "delivering"
        console.print(f"{escape(e['stream'])}: {state_text}", highlight=False)


def _set(name: str, project_dir: Path, as_json: bool, paused: bool) -> None:
    from headwater.state.pauses import pause_stream, resume_stream

    console = Console()
    names, state = _open(project_dir, console)
    _known(name, names)  # an unknown stream: ConfigError, exit 2
    rows = pause_stream(state, name, "cli") if paused else resume_stream(state, name)
    if as_json:
        print_json({"stream": name, "paused": paused, "rows": rows})
    elif paused:
        console.print(f"Paused {escape(name)}: events are accepted and held.", highlight=False)
    else:
        console.print(f"Resumed {escape(name)}: {rows} held outbox row(s) released.")


@streams_app.command("pause")
def streams_pause(
    name: str = typer.Argument(..., help="The stream (or `gateway` for /users/track)."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Hold the stream's events in the outbox until `resume` (intake goes on)."""
    _set(name, project_dir, as_json, True)


@streams_app.command("resume")
def streams_resume(
    name: str = typer.Argument(..., help="The stream (or `gateway` for /users/track)."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Deliver the stream's held events, in order, and whatever comes next."""
    _set(name, project_dir, as_json, False)


def register(app: typer.Typer) -> None:
    app.add_typer(streams_app, name="streams")
