"""``headwater sync NAME`` and ``headwater runs``: send a model to Braze, then look back.

Every run leaves a record in the state store; ``runs`` reads it back, including the
row-level errors, so a user can see which rows did not make it and why.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from headwater.cli.loading import load_checked
from headwater.cli.output import JSON_OPTION
from headwater.config import Project
from headwater.errors import ConfigError
from headwater.state import runs
from headwater.state.db import open_state
from headwater.syncs.engine import SyncReport, run_sync

PROJECT_OPTION = typer.Option(
    Path("."), "--project", "-p", help="The project directory (or its headwater.yml)."
)
WIDE_OUTPUT = 120  # columns for piped output: tables must not be cut at 80
COUNT_COLUMNS = ("added", "changed", "removed", "unchanged", "rejected", "failed", "sent")


def _load(project_dir: Path, console: Console) -> Project:
    try:
        return load_checked(project_dir)
    except ConfigError as exc:
        for problem in exc.problems:
            console.print(f"[red]error:[/] {escape(problem)}", soft_wrap=True)
        raise typer.Exit(2) from None


def print_report(report: SyncReport, console: Console) -> None:
    """The summary a user reads after a run (also used by the demo)."""
    title = f"sync {report.sync}" + (f" — run {report.run_id}" if report.run_id else " — dry run")
    table = Table(title=title, show_header=True)
    for name in COUNT_COLUMNS:
        table.add_column(name, justify="right")
    table.add_row(*(f"{getattr(report, n):,}" for n in COUNT_COLUMNS))
    console.print(table)
    saved = report.full_data_points - report.data_points
    console.print(
        f"status [bold]{report.status}[/] · {report.requests:,} request{'' if report.requests == 1 else 's'} · "
        f"{report.data_points:,} data points"
        + (
            f" (a full resend would cost {report.full_data_points:,}; saved {saved:,})"
            if saved > 0
            else ""
        )
        + f" · {report.seconds:.1f}s"
    )
    if report.error:
        console.print(f"[red]error:[/] {escape(report.error)}", soft_wrap=True)
    shown = report.errors[:10]
    for error in shown:
        console.print(f"  [yellow]•[/] {escape(str(error))}")
    more = report.rejected + report.failed - len(shown)
    if more > 0 and report.run_id:
        console.print(f"  … and {more:,} more: headwater runs show {report.run_id}")


def _stop_like_ctrl_c(_signum, frame) -> None:
    """SIGTERM unwinds the run as Ctrl+C does: it records itself as interrupted (with what
    it sent so far) instead of dying with its record left open. While the sending loop
    runs, its own Ctrl+C handler takes it (it cancels the loop's main task, then raises
    KeyboardInterrupt outside it); raised here instead, the interrupt could land inside
    one of the loop's tasks and be logged as a task exception nobody retrieved."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)
        return
    raise KeyboardInterrupt


def sync(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The sync to run, as named in headwater.yml."),
    full: bool = typer.Option(False, "--full", help="Resend every row, not only changes."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count and preview; send nothing."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send a model to Braze: only the rows and attributes that changed since the last run.
    SIGTERM or Ctrl+C stops it and records the run as interrupted."""
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
        ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))
    console = Console(stderr=as_json)
    project = _load(project_dir, console)
    if as_json or not sys.stderr.isatty():
        report = run_sync(project, name, full=full, dry_run=dry_run)
    else:
        with Progress(
            TextColumn(f"[bold]sync {escape(name)}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("rows", total=None)
            report = run_sync(
                project,
                name,
                full=full,
                dry_run=dry_run,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    if as_json:
        payload = {
            "sync": report.sync,
            "run_id": report.run_id,
            "status": report.status,
            "counts": report.counts(),
            "full_data_points": report.full_data_points,
            "seconds": round(report.seconds, 3),
            "error": report.error,
            "preview": report.preview,
        }
        typer.echo(json.dumps(payload, indent=2, default=str))
    else:
        print_report(report, console)
        if report.dry_run:
            console.print("Preview of the first objects that would be sent:")
            for obj in report.preview:
                console.print_json(json.dumps(obj, default=str))
    if report.status == "failed":
        raise typer.Exit(1)


runs_app = typer.Typer(
    help="Past runs: counts, data points, row-level errors.", invoke_without_command=True
)


@runs_app.callback()
def runs_list(
    ctx: typer.Context,
    sync_name: str = typer.Option(None, "--sync", help="Only runs of this sync."),
    limit: int = typer.Option(20, "--limit", "-n", help="How many runs to show."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List recent runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    state = open_state(_load(project_dir, console).state_url)
    runs.mark_interrupted(state)
    records = runs.list_runs(state, limit=limit, sync=sync_name)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return
    table = Table(
        title="runs",
        caption="add/chg/rm: rows added, changed, removed; rej: rejected",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    headers = {"id": "id", "sync": "sync", "status": "status", "started": "started", "secs": "secs",
               "added": "add", "changed": "chg", "removed": "rm", "rejected": "rej",
               "failed": "fail", "sent": "sent", "data_points": "data pts"}  # fmt: skip
    for name, header in headers.items():
        left = name in ("sync", "status", "started")
        table.add_column(
            header, justify="left" if left else "right", no_wrap=True, min_width=len(header)
        )
    for r in records:
        table.add_row(
            str(r.id),
            r.sync,
            r.status,
            r.started_at.strftime("%m-%d %H:%M"),
            f"{r.duration_seconds:.1f}" if r.duration_seconds is not None else "-",
            *(f"{r.counts.get(n, 0):,}" for n in list(headers)[5:]),
        )
    console.print(table)


@runs_app.command("show")
def runs_show(
    run_id: int = typer.Argument(..., help="The run id (from `headwater runs`)."),
    errors: int = typer.Option(50, "--errors", help="How many row errors to list."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """One run in full: counts, duration, and its row-level errors."""
    console = Console()
    state = open_state(_load(project_dir, console).state_url)
    runs.mark_interrupted(state)
    record = runs.get_run(state, run_id)
    if record is None:
        console.print(f"[red]error:[/] no run with id {run_id}")
        raise typer.Exit(1)
    row_errors = runs.row_errors(state, run_id, limit=errors)
    if as_json:
        payload = record.to_dict() | {"row_errors": [e.__dict__ for e in row_errors]}
        typer.echo(json.dumps(payload, indent=2, default=str))
        return
    console.print(f"[bold]run {record.id}[/] · sync {record.sync} · [bold]{record.status}[/]")
    console.print(f"started {record.started_at:%Y-%m-%d %H:%M:%S %Z}", end="")
    if record.duration_seconds is not None:
        console.print(f" · {record.duration_seconds:.1f}s", end="")
    console.print()
    table = Table(show_header=True)
    for name in (*COUNT_COLUMNS, "requests", "data_points"):
        table.add_column(name, justify="right")
    table.add_row(
        *(f"{record.counts.get(n, 0):,}" for n in (*COUNT_COLUMNS, "requests", "data_points"))
    )
    console.print(table)
    if record.error:
        console.print(f"[red]error:[/] {escape(record.error)}")
    if row_errors:
        errors_table = Table(title=f"row errors ({record.row_error_count:,} in all)")
        for column in ("row", "field", "reason"):
            errors_table.add_column(column)
        for e in row_errors:
            errors_table.add_row(
                escape(str(e.row_key)), escape(str(e.field or "")), escape(e.reason)
            )
        console.print(errors_table)


def register(app: typer.Typer) -> None:
    app.command("sync")(sync)
    app.add_typer(runs_app, name="runs")
