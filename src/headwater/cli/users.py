"""``headwater users``: the console's users (create, list, delete, set a password) and
their API tokens. Passwords are prompted for (hidden, twice) or read from
``HEADWATER_USER_PASSWORD`` for scripts; they never appear on a command line."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from headwater.cli.output import JSON_OPTION, print_json
from headwater.cli.serve import PROJECT_OPTION, STATE_OPTION, _state_engine
from headwater.errors import ConfigError

PASSWORD_ENV = "HEADWATER_USER_PASSWORD"
users_app = typer.Typer(help="Console users and their API tokens.", no_args_is_help=True)


def _password() -> str:
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("create")
def users_create(
    name: str = typer.Argument(..., help="The user's login name."),
    read_only: bool = typer.Option(
        False, "--read-only", help="May see every page, and act on none."
    ),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a console user (password prompted, or from HEADWATER_USER_PASSWORD)."""
    from headwater.state.users import create_user

    user = create_user(_state_engine(project_dir, state), name, _password(), read_only=read_only)
    if as_json:
        print_json({"id": user.id, "name": user.name, "read_only": user.read_only})
        return
    role = "read-only" if user.read_only else "operator"
    Console().print(f"Created user {user.name} ({role}).", highlight=False, markup=False)


@users_app.command("password")
def users_password(
    name: str = typer.Argument(..., help="The user's login name."),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Set a user's password; their open sessions end."""
    from headwater.state.users import set_password

    set_password(_state_engine(project_dir, state), name, _password())
    if as_json:
        print_json({"name": name, "password_changed": True})
        return
    Console().print(f"Password of {name} changed.", highlight=False, markup=False)


@users_app.command("list")
def users_list(
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List console users."""
    from headwater.state.users import list_users

    found = list_users(_state_engine(project_dir, state))
    if as_json:
        print_json([{"id": u.id, "name": u.name, "read_only": u.read_only} for u in found])
        return
    table = Table("id", "name", "role")
    for u in found:
        table.add_row(str(u.id), u.name, "read-only" if u.read_only else "operator")
    Console().print(table)


@users_app.command("delete")
def users_delete(
    name: str = typer.Argument(..., help="The user's login name."),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Delete a user, their sessions and their tokens."""
    from headwater.state.users import delete_user

    if not delete_user(_state_engine(project_dir, state), name):
        raise ConfigError(f"no user named {name!r}")
    if as_json:
        print_json({"deleted": name})
        return
    Console().print(f"Deleted user {name}.", highlight=False, markup=False)


@users_app.command("token")
def users_token(
    name: str = typer.Argument(..., help="The user the token acts as."),
    revoke: bool = typer.Option(False, "--revoke", help="Revoke all of the user's tokens."),
    project_dir: Path = PROJECT_OPTION,
    state: str | None = STATE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Issue an API token for the console (Authorization: Bearer hwu_...), printed once;
    or --revoke them all."""
    from headwater.state.users import create_token, revoke_tokens

    engine = _state_engine(project_dir, state)
    if revoke:
        count = revoke_tokens(engine, name)
        if as_json:
            print_json({"name": name, "revoked": count})
            return
        Console().print(f"Revoked {count} token(s) of {name}.", highlight=False, markup=False)
        return
    plain = create_token(engine, name)
    if as_json:
        print_json({"name": name, "token": plain})
        return
    Console(stderr=True).print("Store it now; it will not be shown again:", style="bold")
    typer.echo(plain)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
