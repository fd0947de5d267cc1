"""``headwater audiences``: list audiences with their members per split, sync them, and
read the membership history Braze does not keep."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.audiences import AudienceReport, run_audiences
from headwater.audiences.views import history, list_audiences
from headwater.cli.output import JSON_OPTION, print_json
from headwater.cli.sync import PROJECT_OPTION, WIDE_OUTPUT, _load, _stop_like_ctrl_c

COUNTS = ("added", "removed", "changed", "unchanged", "rejected", "failed", "sent")

app = typer.Typer(
    help="Audiences: SQL conditions synced as boolean attributes per split.",
    invoke_without_command=True,
)


@app.callback()
def audiences_list(
    ctx: typer.Context, project_dir: Path = PROJECT_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """List audiences: splits, their attributes and shares, and members per split."""
    if ctx.invoked_subcommand is not None:
        return
    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    views = list_audiences(_load(project_dir, console))
    if as_json:
        print_json([v.to_dict() for v in views])
        return
    if not views:
        console.print("no audiences in headwater.yml")
        return
    table = Table(title="audiences")
    for column in ("audience", "model", "split", "share", "attribute", "members"):
        table.add_column(column, justify="right" if column in ("share", "members") else "left")
    for view in views:
        for i, split in enumerate(view.splits):
            table.add_row(
                view.name if i == 0 else "",
                view.model if i == 0 else "",
                split.split,
                f"{split.percent:g} %",
                split.attribute or "(sent nothing)",
                f"{split.members:,}" if split.members is not None else "?",
            )
        if view.note:
            table.add_row("", "", "", "", escape(view.note), "")
    console.print(table)


def print_report(report: AudienceReport, console: Console) -> None:
    title = f"audience {report.audience}" + (
        f" — run {report.run_id}" if report.run_id else " — dry run"
    )
    table = Table(title=title)
    for name in COUNTS:
        table.add_column(name, justify="right")
    table.add_row(*(f"{getattr(report, n):,}" for n in COUNTS))
    console.print(table)
    sizes = ", ".join(f"{k} {v:,}" for k, v in sorted(report.sizes.items())) or "none"
    console.print(
        f"status [bold]{report.status}[/] · {report.requests:,} requests · "
        f"{report.data_points:,} data points · members: {sizes} · {report.seconds:.1f}s"
    )
    if report.error:
        console.print(f"[red]error:[/] {escape(report.error)}", soft_wrap=True)
    for error in report.errors[:10]:
        console.print(f"  [yellow]•[/] {escape(str(error))}")


@app.command("sync")
def audiences_sync(
    ctx: typer.Context,
    name: str = typer.Argument(None, help="The audience to run (default: every audience)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count and preview; send nothing."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Send entries (true) and exits (false or unset) since the last run; the audiences
    over one model are diffed in one pass. SIGTERM or Ctrl+C records the run interrupted."""
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _stop_like_ctrl_c)
        ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))
    console = Console(stderr=as_json)
    project = _load(project_dir, console)
    reports = run_audiences(project, [name] if name else None, dry_run=dry_run)
    if as_json:
        print_json(
            [
                {
                    "audience": r.audience,
                    "run_id": r.run_id,
                    "status": r.status,
                    "counts": r.counts(),
                    "members": r.sizes,
                    "seconds": round(r.seconds, 3),
                    "error": r.error,
                    "preview": r.preview,
                }
                for r in reports
            ]
        )
    else:
        for report in reports:
            print_report(report, console)
            if report.dry_run and report.preview:
                console.print("Preview of the first objects that would be sent:")
                for obj in report.preview:
                    console.print_json(data=obj)
    if any(r.status == "failed" for r in reports):
        raise typer.Exit(1)


@app.command("history")
def audiences_history(
    name: str = typer.Argument(..., help="The audience."),
    person: str = typer.Option(None, "--person", help="Only this person (the model's key)."),
    limit: int = typer.Option(50, "--limit", "-n", help="How many stays to show."),
    project_dir: Path = PROJECT_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Who entered and left which split, and when (newest first)."""
    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    rows = history(_load(project_dir, console), name, person, limit)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"audience {name}: history")
    for column in ("person", "split", "identifier", "entered", "left"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            escape(str(row["person_id"])),
            row["split"],
            escape(str(row["identifier"] or "")),
            f"{row['entered_at']:%Y-%m-%d %H:%M:%S}",
            f"{row['left_at']:%Y-%m-%d %H:%M:%S}" if row["left_at"] else "",
        )
    console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="audiences")
