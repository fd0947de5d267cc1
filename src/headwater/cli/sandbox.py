"""``headwater sandbox``: a Braze-compatible instance on localhost, and its API keys."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from headwater.braze.endpoints import PERMISSIONS
from headwater.braze.limits import BatchPolicy
from headwater.cli.output import JSON_OPTION, print_json
from headwater.sandbox.keys import ALL_PERMISSIONS, KeyRing
from headwater.sandbox.settings import SandboxSettings
from headwater.sandbox.store import Store

DEFAULT_DB = ".headwater/sandbox.db"
DB_OPTION = typer.Option(
    DEFAULT_DB, "--db", help="SQLite file holding the sandbox's data (or :memory:)."
)

sandbox_app = typer.Typer(
    help="A Braze-compatible sandbox on localhost, for development, tests and demos.",
    invoke_without_command=True,
    no_args_is_help=False,
)
keys_app = typer.Typer(
    help="API keys of the sandbox (each with its permissions).", no_args_is_help=True
)
sandbox_app.add_typer(keys_app, name="keys")


@sandbox_app.callback()
def serve_sandbox(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(9090, "--port", help="Port to listen on."),
    db: str = DB_OPTION,
    key: str = typer.Option(
        None,
        "--key",
        envvar="HEADWATER_SANDBOX_KEY",
        show_envvar=True,
        help="Start with this API key holding every permission (for scripts and CI).",
    ),
    keys_file: Path = typer.Option(
        None, "--keys-file", help="YAML list of {name, key, permissions}."
    ),
    batch_policy: BatchPolicy = typer.Option(
        BatchPolicy.COMBINED,
        "--batch-policy",
        help="75 objects combined (current) or per kind (legacy).",
    ),
    control_token: str = typer.Option(
        None,
        "--control-token",
        envvar="HEADWATER_SANDBOX_CONTROL_TOKEN",
        help="Protect /_sandbox/* with this token.",
    ),
    currents_url: str = typer.Option(
        None,
        "--currents-url",
        help="Post the events the sandbox records to this Braze Currents (custom HTTP) "
        "endpoint, e.g. http://127.0.0.1:8080/currents/braze.",
    ),
    currents_token: str = typer.Option(
        None,
        "--currents-token",
        envvar="HEADWATER_SANDBOX_CURRENTS_TOKEN",
        show_envvar=True,
        help="The bearer token the Currents emitter presents.",
    ),
    campaign: list[str] = typer.Option(
        None,
        "--campaign",
        help="Declare an API-triggered campaign trigger sends may target: ID or ID=NAME "
        "(repeatable), e.g. --campaign welcome-loyal.",
    ),
    canvas: list[str] = typer.Option(
        None, "--canvas", help="Declare a canvas, as --campaign (repeatable)."
    ),
    catalog: Path = typer.Option(
        None,
        "--catalog",
        help="YAML file with campaigns: and canvases: lists of {id, name, tags, api, "
        "status, description}.",
    ),
) -> None:
    """Start the sandbox (data kept in --db, so it survives restarts)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from headwater.sandbox.app import create_app
    from headwater.sandbox.control import is_loopback

    console = Console(stderr=True)
    try:
        declared = declared_catalog(campaign or [], canvas or [], catalog)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    settings = SandboxSettings(
        db=db,
        campaigns=declared["campaigns"],
        canvases=declared["canvases"],
        key=key,
        keys_file=str(keys_file) if keys_file else None,
        batch_policy=batch_policy,
        control_token=control_token,
        currents_url=currents_url,
        currents_token=currents_token,
    )
    try:
        app = create_app(settings)
    except (OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    keys = app.state.sandbox.keys.listing()
    messaging = app.state.sandbox.messaging
    console.print(
        f"Braze sandbox on http://{host}:{port} · data in {db} · {len(app.state.sandbox.users.profiles):,} users · "
        f"{sum(1 for k in keys if not k.revoked_at)} active key(s) · batch policy {batch_policy.value}"
    )
    for kind in ("campaign", "canvas"):
        items = messaging.catalog(kind) if messaging is not None else []
        if items:
            console.print(f"{kind}s: " + ", ".join(escape(i["id"]) for i in items))
    if not keys:
        console.print(
            "[yellow]no API keys yet:[/] headwater sandbox keys create --name dev --perm users.track"
        )
    if control_token:
        console.print("control API /_sandbox/* needs the control token (Bearer)")
    elif not is_loopback(host):
        console.print(
            f"[yellow]control API /_sandbox/* answers only callers on this machine[/] "
            f"(listening on {host} without --control-token); set --control-token "
            "(or HEADWATER_SANDBOX_CONTROL_TOKEN) to use it from elsewhere",
            highlight=False,
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


def declared_catalog(
    campaigns: list[str], canvases: list[str], catalog: Path | None
) -> dict[str, list]:
    """The campaigns and canvases to start with: ``--catalog``'s, then the flags'
    (``ID`` or ``ID=NAME``). The sandbox checks each one as ``/_sandbox/campaigns`` does."""
    declared: dict[str, list] = {"campaigns": [], "canvases": []}
    if catalog is not None:
        loaded = yaml.safe_load(catalog.read_text()) or {}
        if not isinstance(loaded, dict) or set(loaded) - set(declared):
            raise ValueError(f"{catalog}: expected a mapping with campaigns: and canvases:")
        for kind in declared:
            items = loaded.get(kind) or []
            if not isinstance(items, list):
                raise ValueError(f"{catalog}: {kind} must be a list")
            declared[kind] += items
    for kind, flags in (("campaigns", campaigns), ("canvases", canvases)):
        for flag in flags:
            item_id, _, name = flag.partition("=")
            if not item_id.strip():
                raise ValueError(f"--{kind[:-1]} {flag!r}: give an id (ID or ID=NAME)")
            declared[kind].append({"id": item_id.strip(), "name": name.strip() or item_id.strip()})
    return declared


def _ring(db: str) -> KeyRing:
    return KeyRing(Store(db))


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., "--name", help="A name for the key, e.g. the partner or app."),
    perm: list[str] = typer.Option(
        None,
        "--perm",
        help=f"A permission, repeatable (e.g. users.track); '{ALL_PERMISSIONS}' for all.",
    ),
    db: str = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a key and print it once (only its hash is kept)."""
    permissions = perm or [ALL_PERMISSIONS]
    try:
        secret = _ring(db).create(name, permissions)
    except ValueError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}. Known: {', '.join(PERMISSIONS)}")
        raise typer.Exit(2) from None
    if as_json:
        print_json({"name": name, "permissions": permissions, "key": secret})
        return
    Console(stderr=True).print(f"key [bold]{name}[/] with {', '.join(permissions)} (shown once):")
    typer.echo(secret)


@keys_app.command("list")
def keys_list(db: str = DB_OPTION, as_json: bool = JSON_OPTION) -> None:
    """List keys: names, permissions, when made, whether revoked (never the keys)."""
    keys = _ring(db).listing()
    if as_json:
        print_json([
            {"name": k.name, "permissions": sorted(k.permissions), "created_at": k.created_at,
             "revoked_at": k.revoked_at, "stored": k.stored}
            for k in keys
        ])  # fmt: skip
        return
    table = Table("name", "permissions", "created", "revoked")
    for key in keys:
        table.add_row(
            key.name,
            ", ".join(sorted(key.permissions)),
            key.created_at[:19],
            (key.revoked_at or "")[:19],
        )
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    name: str = typer.Argument(..., help="The key's name."),
    db: str = DB_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Revoke a key by name: a running sandbox stops accepting it within a second."""
    if not _ring(db).revoke(name):
        Console(stderr=True).print(f"[red]error:[/] no active key named {name!r}")
        raise typer.Exit(1)
    if as_json:
        print_json({"revoked": name})
        return
    Console(stderr=True).print(f"revoked {name}")


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
