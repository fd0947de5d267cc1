"""``headwater serve`` (gateway, webhooks, delivery), ``headwater keys`` (partner keys) and
``headwater dlq`` (dead letters: list and replay)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.cli.output import JSON_OPTION, print_json
from headwater.errors import ConfigError
from headwater.state.keys import HUB_PERMISSIONS

PROJECT_OPTION = typer.Option(
    Path("."), "--project", "-p", help="The project directory (or its headwater.yml)."
)
STATE_OPTION = typer.Option(
    None, "--state", help="State store URL; default: the project's `state`."
)
EXTRA_PERMISSIONS = HUB_PERMISSIONS


def _fail(console: Console, exc: ConfigError) -> None:
    for problem in exc.problems:
        console.print(f"[red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _state_engine(project_dir: Path, state: str | None):
    from headwater.state.db import open_state

    if state:
        return open_state(state)
    from headwater.cli.loading import load_checked

    return open_state(load_checked(project_dir).state_url)


def _project_destinations(project_dir: Path) -> list[str]:
    """The destinations in the project file, which a key's ``--destination`` must name."""
    from headwater.config import load_project

    return list(load_project(project_dir).destinations)


def serve(
    project_dir: Path = PROJECT_OPTION,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    lease_seconds: float | None = typer.Option(
        None,
        "--lease-seconds",
        help="How long a delivery claim lasts before another worker may take it over "
        "(default: gateway.delivery.lease_seconds, 30).",
    ),
    workers: bool = typer.Option(
        True, "--workers/--no-workers", help="Run delivery in this process."
    ),
    metrics_token: str | None = typer.Option(
        None,
        "--metrics-token",
        envvar="HEADWATER_METRICS_TOKEN",
        show_envvar=True,
        help="The bearer token GET /metrics requires (default: metrics.token in headwater.yml); "
        "without one, /metrics answers 403.",
    ),
    schedules: bool = typer.Option(
        True, "--schedules/--no-schedules", help="Run the project's scheduled syncs."
    ),
    shutdown_seconds: float | None = typer.Option(
        None,
        "--shutdown-seconds",
        min=0.1,
        help="On SIGTERM/SIGINT: stop accepting, finish or hand back in-flight work and "
        "exit 0 within this many seconds (default: gateway.shutdown_seconds, 25).",
    ),
) -> None:
    """Run the Braze-compatible gateway, the webhooks, the delivery workers and every
    scheduled sync.

    SIGTERM or SIGINT stops it gracefully within the shutdown bound; a second one hands
    unsent work back at once. Probes: GET /healthz (alive), GET /readyz (state store and
    destinations reachable)."""
    from pydantic import SecretStr

    from headwater.cli.loading import load_checked
    from headwater.runtime.settings import ServeSettings
    from headwater.server.app import create_app, tune_garbage_collector
    from headwater.server.lifecycle import run_server

    console = Console(stderr=True)
    try:
        project = load_checked(project_dir)
        settings = ServeSettings.from_project(project)
        if not settings.currents:  # a hub that only receives Currents sends to no Braze
            settings.default_destination()
        if lease_seconds is not None:
            settings.delivery.lease_seconds = lease_seconds
        settings.run_workers = workers
        if shutdown_seconds is not None:
            settings.shutdown_seconds = shutdown_seconds
        if metrics_token:
            settings.metrics_token = SecretStr(metrics_token)
        app = create_app(settings)  # opens the state store: stale or locked is refused here
    except ConfigError as exc:
        _fail(console, exc)
    app.state.hub.project = project  # the console lists and runs the project's jobs
    scheduled = _attach_scheduler(app, project) if schedules else 0
    tune_garbage_collector()
    console.print(
        f"Headwater gateway on http://{host}:{port} "
        f"({len(settings.streams)} stream(s), destinations: {', '.join(settings.destinations)}, "
        f"{scheduled} scheduled job(s)); console: http://{host}:{port}/console/ "
        "(users: headwater users create NAME)",
        highlight=False,
    )
    if not run_server(app, host, port, app.state.shutdown):
        raise typer.Exit(3)
    console.print("Headwater gateway stopped.", highlight=False)


def _attach_scheduler(app, project) -> int:
    """Give the app a scheduler for the project's scheduled jobs (every kind); return how many."""
    from headwater.schedules.jobs import job_runner, jobs_of
    from headwater.schedules.scheduler import Scheduler

    jobs = jobs_of(project)
    hub = app.state.hub
    if jobs:
        cancel = threading.Event()  # set by a stopping server: running syncs end early
        hub.scheduler = Scheduler(hub.engine, jobs, job_runner(project, cancel), cancel=cancel)
    return len(jobs)


keys_app = typer.Typer(help="Partner API keys for the gateway.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: objects Braze rejected or that failed too often.",
                      no_args_is_help=True)  # fmt: skip


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="Who the key is for, e.g. extole."),
    perm: list[str] = typer.Option(..., "--perm", help="A permission, e.g. users.track (repeat)."),
    destination: str | None = typer.Option(
        None, "--destination", help="Send this key's traffic to this destination (e.g. a test one)."
    ),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue a key. It is printed once and only its hash is kept."""
    from headwater.braze.endpoints import PERMISSIONS
    from headwater.state.keys import create_key

    console = Console()
    unknown = [p for p in perm if p not in PERMISSIONS and p not in EXTRA_PERMISSIONS]
    if unknown:
        console.print(f"[red]error:[/] unknown permission(s): {', '.join(unknown)}")
        raise typer.Exit(1)
    try:
        known = _project_destinations(project_dir) if destination is not None else None
        engine = _state_engine(project_dir, state)
        record, plain = create_key(engine, name, perm, destination, known)
    except ConfigError as exc:
        _fail(console, exc)
    if as_json:
        print_json({"id": record.id, "name": record.name, "permissions": list(record.permissions),
                    "destination": record.destination, "key": plain})  # fmt: skip
        return
    console.print(f"Created key {record.id} for {record.name} ({', '.join(record.permissions)}).")
    console.print("Store it now; it will not be shown again:", style="bold")
    typer.echo(plain)


@keys_app.command("list")
def keys_list(
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List keys (never the keys themselves: a prefix to tell them apart)."""
    from headwater.state.keys import list_keys

    try:
        keys = list_keys(_state_engine(project_dir, state))
    except ConfigError as exc:
        _fail(Console(), exc)
    if as_json:
        typer.echo(json.dumps([
            {"id": k.id, "name": k.name, "hint": k.key_hint + "…", "permissions": list(k.permissions),
             "destination": k.destination, "active": k.active}
            for k in keys
        ], indent=2))  # fmt: skip
        return
    table = Table("id", "name", "key", "permissions", "destination", "status")
    for k in keys:
        table.add_row(
            str(k.id), k.name, k.key_hint + "…", ", ".join(k.permissions),
            k.destination or "(default)", "active" if k.active else "revoked",
        )  # fmt: skip
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    name: str | None = typer.Argument(
        None, help="The key's name: every active key with that name is revoked."
    ),
    key_id: int | None = typer.Option(
        None, "--id", help="Revoke the one key with this id instead (see `keys list`)."
    ),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a key by name (or by id with --id); running servers stop accepting it within
    a second."""
    from headwater.state.keys import revoke_key

    console = Console()
    if (name is None) == (key_id is None):
        console.print("[red]error:[/] name the key, or give its id with --id (not both)")
        raise typer.Exit(1)
    try:
        revoked = revoke_key(_state_engine(project_dir, state), name=name, key_id=key_id)
    except ConfigError as exc:
        _fail(console, exc)
    if not revoked:
        which = f"named {name!r}" if key_id is None else f"with id {key_id}"
        console.print(f"[red]error:[/] no active key {which}", highlight=False)
        raise typer.Exit(1)
    if as_json:
        print_json({"revoked": [k.id for k in revoked]})
        return
    console.print("Revoked " + ", ".join(f"{k.name} (id {k.id})" for k in revoked), highlight=False)


@dlq_app.command("list")
def dlq_list(
    stream: str | None = typer.Option(None, "--stream", help="Only this stream."),
    include_replayed: bool = typer.Option(False, "--all", help="Include replayed letters."),
    limit: int = typer.Option(100, "--limit"),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List dead letters with the reason each was parked."""
    from headwater.state.dead_letters import list_dead_letters

    try:
        letters = list_dead_letters(
            _state_engine(project_dir, state), stream=stream,
            include_replayed=include_replayed, limit=limit,
        )  # fmt: skip
    except ConfigError as exc:
        _fail(Console(), exc)
    if as_json:
        typer.echo(json.dumps([
            {"id": d.id, "stream": d.stream, "destination": d.destination, "kind": d.kind,
             "object": json.loads(d.payload), "reason": d.reason, "attempts": d.attempts,
             "parked_at": d.parked_at, "replayed_at": d.replayed_at}
            for d in letters
        ], indent=2))  # fmt: skip
        return
    table = Table("id", "stream", "destination", "kind", "reason", "attempts", "parked")
    for d in letters:
        parked = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.parked_at))
        table.add_row(str(d.id), d.stream, d.destination, d.kind, d.reason, str(d.attempts), parked)
    console = Console()
    console.print(table)
    console.print(f"{len(letters)} dead letter(s).")


@dlq_app.command("replay")
def dlq_replay(
    ids: list[int] = typer.Argument(None, help="Letter ids to replay."),
    replay_all: bool = typer.Option(False, "--all", help="Replay every unreplayed letter."),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Put letters back in the outbox; a running server delivers them again."""
    from headwater.state.dead_letters import replay_dead_letters

    console = Console()
    if not ids and not replay_all:
        console.print("[red]error:[/] name letter ids or pass --all")
        raise typer.Exit(1)
    try:
        count = replay_dead_letters(_state_engine(project_dir, state), None if replay_all else ids)
    except ConfigError as exc:
        _fail(console, exc)
    if as_json:
        print_json({"replayed": count})
    else:
        console.print(f"Replayed {count} dead letter(s).")
    if ids and count < len(ids):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the root app."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
    app.add_typer(dlq_app, name="dlq")
