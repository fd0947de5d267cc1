"""``headwater currents``: what the Currents receivers hold: events waiting to land, ids
remembered, and the batches refused (kept for inspection, with the reason)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from headwater.cli.output import JSON_OPTION
from headwater.cli.serve import PROJECT_OPTION, STATE_OPTION, _fail, _state_engine
from headwater.errors import ConfigError

currents_app = typer.Typer(
    help="Braze Currents receivers: pending events and refused batches.", no_args_is_help=True
)


@currents_app.command("status")
def status(
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Events accepted and not landed yet, ids remembered for de-duplication, and refused
    batches kept, per receiver."""
    from sqlalchemy import func, select

    from headwater.state.currents import currents_batches, currents_rejected
    from headwater.state.currents_claims import claims_store, claims_table

    try:
        engine = _state_engine(project_dir, state)
    except ConfigError as exc:
        _fail(Console(), exc)
    figures: dict[str, dict[str, int]] = {}
    landed = claims_table(engine)  # (on SQLite, in a file of its own)
    for name, store, table, value in (
        ("pending", engine, currents_batches, func.sum(currents_batches.c.events)),
        ("remembered", claims_store(engine), landed, func.count()),
        ("rejected", engine, currents_rejected, func.count()),
    ):
        query = select(table.c.receiver, value).group_by(table.c.receiver)
        with store.connect() as conn:
            for receiver, count in conn.execute(query):
                figures.setdefault(
                    receiver, dict.fromkeys(("pending", "remembered", "rejected"), 0)
                )
                figures[receiver][name] = int(count or 0)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))
        return
    table = Table("receiver", "pending events", "ids remembered", "refused batches")
    for receiver, counts in sorted(figures.items()):
        table.add_row(receiver, *(str(counts[k]) for k in ("pending", "remembered", "rejected")))
    Console().print(table)


@currents_app.command("rejected")
def rejected(
    receiver: str | None = typer.Option(None, "--receiver", help="Only this receiver."),
    limit: int = typer.Option(20, "--limit", min=1, max=10_000),
    show_body: bool = typer.Option(False, "--body", help="Print each body as received."),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Batches answered 400 (not JSON, not {"events": [...]}, or holding a malformed
    event), newest first, with the reason naming each bad event."""
    from headwater.state.currents import list_rejected

    try:
        rows = list_rejected(_state_engine(project_dir, state), receiver, limit)
    except ConfigError as exc:
        _fail(Console(), exc)
    if as_json:
        typer.echo(json.dumps([
            {"id": r["id"], "receiver": r["receiver"], "status": r["status"], "reason": r["reason"],
             "received_at": r["received_at"], "body": r["body"].decode("utf-8", "replace")}
            for r in rows
        ], indent=2))  # fmt: skip
        return
    console = Console()
    for r in rows:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["received_at"]))
        console.print(f"#{r['id']} {r['receiver']} {at} UTC: {r['reason']}", highlight=False,
                      markup=False, soft_wrap=True)  # fmt: skip
        if show_body:
            console.print(r["body"].decode("utf-8", "replace"), highlight=False, markup=False)
    console.print(f"{len(rows)} refused batch(es).")


def register(app: typer.Typer) -> None:
    app.add_typer(currents_app, name="currents")
