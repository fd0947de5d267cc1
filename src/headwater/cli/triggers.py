"""``headwater triggers``: each trigger's condition and action, how many entries were
sent, failed, and are in doubt (claimed, and Braze's answer never recorded: possibly
sent, never resent), from the state store's ledger."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.cli.output import JSON_OPTION, print_json
from headwater.cli.sync import PROJECT_OPTION, WIDE_OUTPUT, _load


def triggers_list(project_dir: Path = PROJECT_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List triggers with their sent, failed and in-doubt entry counts."""
    from headwater.config.triggers import describe
    from headwater.state import triggers as ledger
    from headwater.state.db import open_state

    console = Console(width=None if sys.stdout.isatty() else WIDE_OUTPUT)
    project = _load(project_dir, console)
    state = open_state(project.state_url)
    ledger.trigger_sends.create(state, checkfirst=True)
    ledger.sweep_stale(state)
    counts = ledger.counts(state)
    rows = []
    for name in sorted(set(project.triggers) | set(counts)):
        found = counts.get(name, dict.fromkeys(ledger.STATUSES, 0))
        trigger = project.triggers.get(name)
        shown = describe(trigger) if trigger else {"when": "(no longer declared)",
                                                   "action": "-", "target": "-"}  # fmt: skip
        rows.append({"trigger": name, **shown, "sent": found[ledger.SENT],
                     "failed": found[ledger.FAILED],
                     "in_doubt": found[ledger.IN_DOUBT], "in_flight": found[ledger.CLAIMED]})  # fmt: skip
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No triggers: add a `triggers:` section to headwater.yml.")
        return
    table = Table(title="triggers", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("trigger", "when", "action", "target", "sent", "failed", "in doubt"):
        table.add_column(column, justify="right" if column in ("sent", "failed", "in doubt")
                         else "left")  # fmt: skip
    for r in rows:
        table.add_row(escape(r["trigger"]), escape(r["when"]), r["action"], escape(r["target"]),
                      f"{r['sent']:,}", f"{r['failed']:,}", f"{r['in_doubt']:,}")  # fmt: skip
    console.print(table)
    doubt = sum(r["in_doubt"] for r in rows)
    if doubt:
        console.print(
            f"{doubt:,} sends in doubt: Braze may have sent them (no answer was recorded); "
            "they are never resent.",
            highlight=False,
        )


def register(app: typer.Typer) -> None:
    app.command("triggers")(triggers_list)
