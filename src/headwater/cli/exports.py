"""``headwater export segments``: Braze segments landed as Parquet tables, with a progress
bar per segment; ``--json`` for scripts. The views to query them come with the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from headwater.cli.export_schedule import parse_schedule, run_on_schedule
from headwater.cli.loading import load_checked
from headwater.cli.output import JSON_OPTION
from headwater.errors import ConfigError
from headwater.exports.segments import ExportReport, run_segments_export, segment_views

PROJECT_OPTION = typer.Option(
    Path("."), "--project", "-p", help="The project directory (or its headwater.yml)."
)

export_app = typer.Typer(help="Pull data back out of Braze into the landing directory.")


class _Bars:
    """One Rich task per segment: bytes while downloading, users while reading."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, name: str, phase: str, done: int, total: int | None) -> None:
        task = self.tasks.get(name)
        if task is None:
            task = self.tasks[name] = self.progress.add_task(escape(name), total=None, phase="")
        labels = {
            "export": "Braze prepares the files",
            "download": "downloading",
            "parse": f"reading · {done:,} users",
            "landed": f"landed · {done:,} members",
            "failed": "[red]failed",
        }
        if phase == "download":
            self.progress.update(task, completed=done, total=total, phase=labels[phase])
        elif phase in ("landed", "failed"):  # the bar full, the downloaded size kept
            total = next(t.total for t in self.progress.tasks if t.id == task) or 1
            self.progress.update(task, completed=total, total=total, phase=labels[phase])
        else:
            self.progress.update(task, phase=labels.get(phase, phase))


def print_export_report(report: ExportReport, console: Console) -> None:
    table = Table(title=f"export segments — run {report.run_id}")
    for column in ("segment", "status", "members", "entered", "left", "duplicates", "rejected"):
        table.add_column(column, justify="left" if column in ("segment", "status") else "right")
    for s in report.segments:
        table.add_row(
            escape(s.name), s.status, f"{s.members:,}", f"{s.entered:,}", f"{s.exited:,}",
            f"{s.duplicates:,}", f"{s.rejected:,}",
        )  # fmt: skip
    console.print(table)
    console.print(f"status [bold]{report.status}[/] · {report.seconds:.1f}s")
    if report.error:
        console.print(f"[red]error:[/] {escape(report.error)}", soft_wrap=True)
    for error in report.errors:
        console.print(f"  [yellow]•[/] {escape(str(error))}")
    if report.rejected > len(report.errors) and report.run_id:
        console.print(f"  … every rejected line: headwater runs show {report.run_id}")


@export_app.command("segments")
def export_segments(
    segment: list[str] = typer.Option(
        None, "--segment", "-s", help="Only this segment (name or id); repeat for more."
    ),
    schedule: str = typer.Option(
        None,
        "--schedule",
        help="Run on this schedule in the foreground until Ctrl-C: a cron expression "
        "('0 5 * * *') or an interval (15m, 6h, 1d). Same rules as schedule: under serve.",
    ),
    timezone: str = typer.Option(
        "UTC", "--timezone", help="The time zone a --schedule cron is read in."
    ),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Export Braze segments (every one configured, or --segment) and land them as Parquet
    tables: members per segment, the segments table and the membership history."""
    console = Console(stderr=as_json)
    project = load_checked(project_dir)
    if schedule is not None:
        try:
            when = parse_schedule(schedule, timezone)
        except ConfigError as exc:
            console.print(f"[red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None

        def once(stop) -> ExportReport:
            report = run_segments_export(project, segments=segment or None, stop=stop)
            _show(report, project, console, as_json)
            return report

        run_on_schedule(project, when, once, console)
        return
    report = _run(project, segment, console, as_json)
    _show(report, project, console, as_json)
    if report.status == "failed":
        raise typer.Exit(1)


def _run(project, segment: list[str] | None, console: Console, as_json: bool) -> ExportReport:
    if as_json or not sys.stderr.isatty():
        return run_segments_export(project, segments=segment or None)
    else:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[phase]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            return run_segments_export(project, segments=segment or None, progress=_Bars(bar))


def _show(report: ExportReport, project, console: Console, as_json: bool) -> None:
    views = segment_views(project.landing_path) if report.run_id else {}
    if as_json:
        payload = report.to_dict() | {"landing": str(project.landing_path), "views": views}
        typer.echo(json.dumps(payload, indent=2, default=str))
    else:
        print_export_report(report, console)
        if views:
            console.print(
                f"Query them with DuckDB: [bold]{', '.join(views)}[/] "
                "(headwater export views prints the SQL)"
            )


@export_app.command("views")
def export_views(project_dir: Path = PROJECT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """The DuckDB statements that create a view over every landed table: paste them into
    ``duckdb`` (or run them in a notebook) and query while serve keeps exporting."""
    project = load_checked(project_dir)
    views = segment_views(project.landing_path)
    if as_json:
        typer.echo(json.dumps(views, indent=2))
        return
    if not views:
        Console(stderr=True).print("nothing landed yet: run headwater export segments")
    for statement in views.values():
        typer.echo(statement + ";")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
