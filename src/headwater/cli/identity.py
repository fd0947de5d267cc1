"""``headwater resolve MODEL``: resolve an identity model into persons, then say where the
tables are."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.cli.loading import load_checked
from headwater.cli.output import JSON_OPTION, print_json
from headwater.identity import IdentityReport
from headwater.syncs.merges import MergeReport, resolve_and_merge

PROJECT_OPTION = typer.Option(
    Path("."), "--project", "-p", help="The project directory (or its headwater.yml)."
)
COUNTS = ("records", "persons", "new_persons", "merges", "refused", "rejected")


def print_identity_report(report: IdentityReport, console: Console) -> None:
    table = Table(title=f"resolve {report.model} — run {report.run_id}")
    for name in COUNTS:
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(*(f"{getattr(report, n):,}" for n in COUNTS))
    console.print(table)
    scope = (
        f"incremental: {report.changed:,} records changed, {report.touched:,} resolved again"
        if report.mode == "incremental"
        else "full run"
    )
    console.print(
        f"status [bold]{report.status}[/] · {scope} · {report.rounds} rounds · "
        f"{report.cleaned:,} key values cleaned for the first time · {report.seconds:.1f}s"
    )
    if report.error:
        console.print(f"[red]error:[/] {escape(report.error)}", soft_wrap=True)
        return
    where = "the PostgreSQL database" if report.engine == "postgres" else "the warehouse"
    console.print(f"tables in {where}: " + ", ".join(report.tables.values()))
    for error in report.errors[:10]:
        console.print(f"  [yellow]•[/] {escape(str(error))}")
    more = report.rejected + report.refused - min(len(report.errors), 10)
    if more > 0:
        console.print(
            f"  … and {more:,} more: the {report.tables['rejected']} and "
            f"{report.tables['refused']} tables, or headwater runs show {report.run_id}"
        )


def print_merges(merged: MergeReport, console: Console) -> None:
    if merged.sent:
        console.print(f"{merged.sent:,} merge(s) sent to Braze (/users/merge)")
    for error in merged.errors:
        console.print(f"[red]/users/merge failed:[/] {escape(error)}", soft_wrap=True)


def resolve_command(
    model: str = typer.Argument(..., help="The identity model, as named in headwater.yml."),
    project_dir: Path = PROJECT_OPTION,
    full: bool = typer.Option(
        False,
        "--full",
        help="Resolve every record again (by default only what changed since the last run "
        "and what it can reach; a changed identity: configuration always runs in full).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Resolve an identity model: link its sources' records into persons (stable ids),
    pick golden records, and write the persons, links, golden, refused, rejected and
    merges tables where it runs (the warehouse, or the PostgreSQL database of its sources)."""
    console = Console(stderr=as_json)
    project = load_checked(project_dir)
    if as_json:
        report, merged = resolve_and_merge(project, model, full=full)
        print_json(report.to_dict() | {"braze_merges": merged.__dict__})
    else:
        with console.status(f"resolving {model}") as status:
            report, merged = resolve_and_merge(
                project,
                model,
                full=full,
                progress=lambda step: status.update(f"resolving {model}: {step}"),
            )
        print_identity_report(report, console)
        print_merges(merged, console)
    if report.status == "failed":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("resolve")(resolve_command)
