"""``headwater schedules``: each scheduled job's last run, next run and status; ``pause`` and
``resume`` (kept in the state store, so they hold across restarts and every serve process)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.cli.output import JSON_OPTION, print_json
from headwater.cli.sync import PROJECT_OPTION, WIDE_OUTPUT, _load

schedules_app = typer.Typer(
    help="Scheduled jobs: last and next runs, pause and resume.", invoke_without_command=True
)


def _open(project_dir: Path, console: Console):
    from headwater.schedules.jobs import jobs_of
    from headwater.state.db import open_state

    project = _load(project_dir, console)
    return jobs_of(project), open_state(project.state_url)


def _when(iso: str | None) -> str:
    if iso is None:
        return "-"
    return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@schedules_app.callback()
def schedules_list(
    ctx: typer.Context,
    upcoming: bool = typer.Option(
        False, "--upcoming", "-u", help="Also list each job's next five fire times."
    ),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List scheduled jobs (run by `headwater serve`)."""
    if ctx.invoked_subcommand is not None:
        return
    from headwater.schedules.view import describe_schedules
    from headwater.state import runs

    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    jobs, state = _open(project_dir, console)
    runs.mark_interrupted(state)
    entries = describe_schedules(state, jobs, datetime.now(UTC))
    if as_json:
        print_json(entries)
        return
    if not entries:
        console.print("No scheduled jobs: add `schedule:` to a sync in headwater.yml.")
        return
    table = Table(title="schedules", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("job", "schedule", "status", "last run", "next run"):
        table.add_column(column, no_wrap=column != "schedule")
    for e in entries:
        last = e["last_run"]
        table.add_row(
            escape(e["job"]),
            escape(e["schedule"]),
            e["status"],
            f"{last['id']} {last['status']} {_when(last['started_at'])}" if last else "never",
            _when(e["next_run"]) if e["next_run"] else ("when " + e["after"] + " succeeds"
                                                          if e["after"] else "-"),
        )  # fmt: skip
    console.print(table)
    if upcoming:
        for e in entries:
            if e["next_fire_times"]:
                times = ", ".join(_when(t) for t in e["next_fire_times"])
                console.print(f"{escape(e['job'])}: {times}", highlight=False)


def _set_paused(name: str, project_dir: Path, as_json: bool, paused: bool) -> None:
    from headwater.schedules.view import set_job_paused

    console = Console()
    jobs, state = _open(project_dir, console)
    set_job_paused(state, jobs, name, paused)  # an unknown job: ConfigError, exit 2
    if as_json:
        print_json({"job": name, "paused": paused})
    else:
        console.print(f"{'Paused' if paused else 'Resumed'} {escape(name)}.", highlight=False)


@schedules_app.command("pause")
def schedules_pause(
    name: str = typer.Argument(..., help="The scheduled job (a sync's name)."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop running a job on schedule until `resume`; slots while paused are not run."""
    _set_paused(name, project_dir, as_json, True)


@schedules_app.command("resume")
def schedules_resume(
    name: str = typer.Argument(..., help="The scheduled job (a sync's name)."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Run a paused job on schedule again, from its next slot."""
    _set_paused(name, project_dir, as_json, False)


def register(app: typer.Typer) -> None:
    app.add_typer(schedules_app, name="schedules")
