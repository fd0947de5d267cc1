"""``headwater init DIR`` and ``headwater validate``: start a project, then check it.

``validate`` prints every problem in the project file at once, each with its line, so a
user fixes them in one pass instead of one per run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.cli.loading import load_checked
from headwater.cli.output import JSON_OPTION, print_json
from headwater.config import (
    PROJECT_FILE,
    Project,
    SqlSourceConfig,
    find_project_file,
    redact_url,
)
from headwater.errors import ConfigError

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "project_template"
TEMPLATE_FILES = (PROJECT_FILE, "data")


def init(
    directory: Path = typer.Argument(..., help="Where to create the project."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing headwater.yml."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a project: an example headwater.yml and shop data (contacts, orders, rewards)."""
    console = Console(stderr=as_json)
    target = directory.expanduser()
    if (target / PROJECT_FILE).exists() and not force:
        console.print(
            f"[red]error:[/] {target / PROJECT_FILE} already exists (use --force to overwrite)"
        )
        raise typer.Exit(1)
    target.mkdir(parents=True, exist_ok=True)
    for name in TEMPLATE_FILES:
        source = TEMPLATE_DIR / name
        if source.is_dir():
            shutil.copytree(source, target / name, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target / name)
    gitignore = target / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(".headwater/\n", encoding="utf-8")
    if as_json:
        copied = [
            p for n in TEMPLATE_FILES for p in [TEMPLATE_DIR / n, *(TEMPLATE_DIR / n).rglob("*")]
        ]
        files = sorted(str(p.relative_to(TEMPLATE_DIR)) for p in copied if p.is_file())
        print_json({"project": str(target), "files": files})
        return

    console.print(f"[green]Created[/] {target}/ with {PROJECT_FILE} and data/ (an online shop).")
    console.print()
    console.print("Next steps:")
    console.print(f"  cd {target}")
    console.print(
        "  headwater sandbox --key dev-key &   # a Braze-compatible API on 127.0.0.1:9090"
    )
    console.print("  export BRAZE_API_KEY=dev-key        # BRAZE_URL defaults to the sandbox")
    console.print("  headwater validate                  # check headwater.yml")
    console.print("  headwater sync contacts --dry-run   # what would be sent")
    console.print("  headwater sync contacts             # send only what changed")
    console.print("  headwater runs                      # what happened")


def validate(
    project_dir: Path = typer.Option(
        Path("."), "--project", "-p", help="The project directory (or its headwater.yml)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check headwater.yml: print every problem with its line, or a summary of the project."""
    console = Console()
    file = find_project_file(project_dir)
    try:
        project = load_checked(file)
    except ConfigError as exc:
        if as_json:
            print_json({"file": str(file), "valid": False, "problems": exc.problems})
            raise typer.Exit(1) from None
        err = Console(stderr=True, soft_wrap=True)
        count = len(exc.problems)
        err.print(
            f"[red]{escape(str(file))}: {count} problem{'s' if count != 1 else ''}[/]",
            highlight=False,
        )
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False)
        raise typer.Exit(1) from None
    if as_json:
        print_json(_summary(project, file))
        return
    _print_summary(console, project, file)


def _summary(project: Project, file: Path) -> dict:
    """What ``validate --json`` prints for a valid project: each part by name (no secrets)."""
    return {
        "file": str(file),
        "valid": True,
        "sources": {
            name: {"type": source.type}
            | (
                {"table": source.table, "query": bool(source.query)}
                if isinstance(source, SqlSourceConfig)
                else {"path": source.path}
            )
            for name, source in project.sources.items()
        },
        "models": {
            name: {
                "primary_key": model.primary_key,
                "columns": {c: spec.type for c, spec in model.columns.items()},
                "source": model.source,
            }
            for name, model in project.models.items()
        },
        "syncs": {
            name: {
                "model": sync.model,
                "destination": sync.destination,
                "type": sync.type,
                "identifier": sync.identifier.kind,
                "schedule": sync.schedule.model_dump(mode="json", exclude_none=True)
                if sync.schedule
                else None,
            }
            for name, sync in project.syncs.items()
        },
        "destinations": {
            name: {"type": dest.type, "url": redact_url(dest.url)}
            for name, dest in project.destinations.items()
        },
        "streams": {name: {"preset": spec.preset} for name, spec in project.streams.items()},
        "audiences": {
            name: {
                "model": audience.model,
                "destination": audience.destination,
                "splits": {g: s / 100 for g, s in audience.groups().items()},
                "schedule": audience.schedule.model_dump(mode="json", exclude_none=True)
                if audience.schedule
                else None,
            }
            for name, audience in project.audiences.items()
        },
        "warnings": _missing_local_files(project),
    }


def _print_summary(console: Console, project: Project, file: Path) -> None:
    console.print(f"[green]✓[/] {escape(str(file))} is valid", highlight=False)
    table = Table(title=None, show_edge=False, pad_edge=False)
    table.add_column("kind")
    table.add_column("name")
    table.add_column("details", overflow="fold")
    for name, source in project.sources.items():
        if isinstance(source, SqlSourceConfig):
            where = source.table or ("query" if source.query else "database")
        else:
            where = source.path
        table.add_row("source", name, f"{source.type}: {where}")
    for name, model in project.models.items():
        table.add_row(
            "model",
            name,
            f"key {model.primary_key}, {len(model.columns)} columns"
            + (f", runs in {model.source}" if model.source else ""),
        )
    for name, sync in project.syncs.items():
        schedule = f", {sync.schedule.describe()}" if sync.schedule else ""
        table.add_row(
            "sync",
            name,
            f"{sync.model} -> {sync.destination} ({sync.type}, by {sync.identifier.kind}){schedule}",
        )
    for name, audience in project.audiences.items():
        schedule = f", {audience.schedule.describe()}" if audience.schedule else ""
        shares = ", ".join(f"{g} {s / 100:g} %" for g, s in audience.groups().items())
        table.add_row(
            "audience", name, f"{audience.model} -> {audience.destination} ({shares}){schedule}"
        )
    for name, dest in project.destinations.items():
        table.add_row("destination", name, f"{dest.type}: {redact_url(dest.url)}")
    for name, spec in project.streams.items():
        table.add_row("stream", name, f"{spec.preset} -> {spec.destination}")
    console.print(table)
    for warning in _missing_local_files(project):
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def _missing_local_files(project: Project) -> list[str]:
    """Local sources with nothing to read yet: worth a warning, not a failure (the files
    may arrive before the first sync). Remote sources are not contacted here."""
    import glob

    warnings = []
    for name, source in project.sources.items():
        if isinstance(source, SqlSourceConfig) or source.is_remote:
            continue
        pattern = str(project.resolve_path(source.path))
        if not glob.glob(pattern, recursive=True):
            warnings.append(f"source {name!r}: no file matches {source.path} (yet)")
    return warnings


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("init")(init)
    app.command("validate")(validate)
