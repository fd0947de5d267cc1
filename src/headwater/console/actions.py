"""The console's buttons (POST, each behind a session's CSRF token or an API token, and
refused to read-only users): log in and out, run or dry-run a sync, pause or resume a
schedule or a stream, replay dead letters, create and revoke partner keys.

A sync started here runs in a daemon thread, as the scheduler runs its jobs, so the event
loop never waits on it; the scheduler's cancel event stops it with the server."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import threading
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from headwater.console.auth import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Refused,
    Viewer,
    acting,
    first,
    form_of,
    login_csrf,
    set_login_csrf,
    set_session_cookie,
    viewer_of,
)
from headwater.console.pages import key_permissions, stream_name
from headwater.console.render import page, refused
from headwater.errors import ConfigError
from headwater.runtime.hub import hub_of
from headwater.state import users
from headwater.state.dead_letters import replay_dead_letters
from headwater.state.keys import create_key, list_keys, revoke_key

log = logging.getLogger("headwater.console")
# Password checks cost ~50 ms of CPU each (scrypt): a flood of logins waits its turn here
# instead of taking every core from the gateway.
LOGIN_CHECKS = 2
_login_slots: asyncio.Semaphore | None = None


def _slots() -> asyncio.Semaphore:
    global _login_slots
    if _login_slots is None:
        _login_slots = asyncio.Semaphore(LOGIN_CHECKS)
    return _login_slots


Action = Callable[[Request, Viewer, dict[str, list[str]]], Awaitable[Response]]


def action(handler: Action) -> Callable[[Request], Awaitable[Response]]:
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            viewer, form = await acting(request)
            return await handler(request, viewer, form)
        except Refused as exc:
            return refused(request, exc)

    return wrapped


def back(to: str, note: str | None = None) -> Response:
    from urllib.parse import quote

    target = to + (("&" if "?" in to else "?") + "note=" + quote(note) if note else "")
    return RedirectResponse(target, status_code=303)


async def login(request: Request) -> Response:
    try:
        form = await form_of(request)
    except Refused as exc:
        return refused(request, exc)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    presented = first(form, "csrf")
    name, password = first(form, "name")[:200], first(form, "password")[:1000]
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        return _login_again(request, "The form expired: try again.", 403)
    engine = hub_of(request).engine
    async with _slots():
        user = await asyncio.to_thread(users.authenticate, engine, name, password)
    if user is None:
        log.warning("console login refused for a user name of %d characters", len(name))
        return _login_again(request, "Wrong name or password.", 401)
    sid, _session = await asyncio.to_thread(users.start_session, engine, user)
    response = RedirectResponse("/console/", status_code=303)
    set_session_cookie(request, response, sid)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


def _login_again(request: Request, error: str, status: int) -> Response:
    token = login_csrf(request)
    response = page("login.html", None, status=status, csrf=token, error=error)
    set_login_csrf(request, response, token)
    return response


async def logout(request: Request) -> Response:
    """Ends the session; needs its CSRF token like any action (read-only users too)."""
    try:
        viewer = await viewer_of(request)
        if viewer is None:
            raise Refused(401, "log in first")
        from headwater.console.auth import check_csrf

        check_csrf(request, viewer, await form_of(request))
    except Refused as exc:
        return refused(request, exc)
    await asyncio.to_thread(
        users.end_session, hub_of(request).engine, request.cookies.get(SESSION_COOKIE)
    )
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _project_sync(request: Request) -> str:
    name = request.path_params["name"]
    project = hub_of(request).project
    if project is None or name not in project.syncs:
        raise Refused(404, f"no sync named {name!r} in this server's project")
    return name


def _job_kind(request: Request):
    """The kind (sync, audience, export, identity model) of the job the URL names."""
    from headwater.console.jobs import project_jobs

    name = request.path_params["name"]
    kind = project_jobs(hub_of(request).project).get(name)
    if kind is not None:
        return name, kind
    raise Refused(404, f"no job named {name!r} in this server's project")


@action
async def run_now(request: Request, viewer: Viewer, form) -> Response:
    """Run any job now, the way the scheduler would (its runner, its cancel event)."""
    name, kind = _job_kind(request)
    hub = hub_of(request)
    cancel = hub.scheduler.cancel if hub.scheduler is not None else None

    def work() -> None:
        try:
            result = kind.run(hub.project, name, cancel)
            log.info("console run of %s by %s: %s", name, viewer.user.name, result.status)
        except Exception:  # recorded in the run; the thread must not die loudly
            log.exception("console run of %s failed", name)

    threading.Thread(target=work, name=f"console-run-{name}", daemon=True).start()
    return back(f"/console/syncs/{name}", f"Run of {name} started.")


@action
async def dry_run(request: Request, viewer: Viewer, form) -> Response:
    name = _project_sync(request)
    hub = hub_of(request)
    from headwater.syncs.engine import run_sync

    report = await asyncio.to_thread(run_sync, hub.project, name, dry_run=True)
    preview = [hub.inspector.redactor.redact(item) for item in report.preview]
    return page("dry_run.html", viewer, name=name, report=report, preview=preview)


async def _pause(request: Request, paused: bool) -> Response:
    name = request.path_params["name"]
    scheduler = hub_of(request).scheduler
    if scheduler is None or name not in scheduler.jobs:
        raise Refused(404, f"no scheduled job named {name!r}")
    from headwater.state.schedules import set_paused

    await asyncio.to_thread(set_paused, scheduler.engine, name, paused)
    return back(f"/console/syncs/{name}", f"{name} {'paused' if paused else 'resumed'}.")


@action
async def pause(request: Request, viewer: Viewer, form) -> Response:
    return await _pause(request, True)


@action
async def resume(request: Request, viewer: Viewer, form) -> Response:
    return await _pause(request, False)


async def _pause_stream(request: Request, viewer: Viewer, paused: bool) -> Response:
    """Pause (events accepted and held in the outbox) or resume (held events delivered, in
    order) a stream, for every serve process sharing the store."""
    from headwater.state.pauses import pause_stream, resume_stream

    name = stream_name(request)
    hub = hub_of(request)
    # On the outbox's writer thread, in turn with intake's commits and delivery's claims
    # (on SQLite a writer racing them would sleep in the busy handler).
    if paused:
        await hub.outbox.write(pause_stream, hub.engine, name, viewer.user.name)
        note = f"{name} paused: its events are accepted and held."
    else:
        rows = await hub.outbox.write(resume_stream, hub.engine, name)
        note = f"{name} resumed: {rows} held outbox row(s) released."
    hub.outbox.forget_pauses()
    log.info("%s %s stream %s", viewer.user.name, "paused" if paused else "resumed", name)
    return back(f"/console/streams/{name}", note)


@action
async def pause_stream(request: Request, viewer: Viewer, form) -> Response:
    return await _pause_stream(request, viewer, True)


@action
async def resume_stream(request: Request, viewer: Viewer, form) -> Response:
    return await _pause_stream(request, viewer, False)


@action
async def replay(request: Request, viewer: Viewer, form) -> Response:
    """Replay the letters ticked (``id``), or all of them (``all=1``)."""
    engine = hub_of(request).engine
    if first(form, "all") == "1":
        ids = None
    else:
        try:
            ids = [int(v) for v in form.get("id", [])][:1000]
        except ValueError:
            raise Refused(400, "dead letter ids are numbers") from None
        if not ids:
            return back("/console/dead-letters", "Nothing ticked to replay.")
    count = await asyncio.to_thread(replay_dead_letters, engine, ids)
    log.info("%s replayed %d dead letter(s)", viewer.user.name, count)
    return back("/console/dead-letters", f"Replayed {count} dead letter(s).")


@action
async def create_partner_key(request: Request, viewer: Viewer, form) -> Response:
    hub = hub_of(request)
    name = first(form, "name").strip()[:200]
    allowed = set(key_permissions())
    perms = [p for p in form.get("perm", []) if p in allowed]
    destination = first(form, "destination") or None
    try:
        record, plain = await asyncio.to_thread(
            create_key, hub.engine, name, perms, destination, list(hub.settings.destinations)
        )
    except ConfigError as exc:
        raise Refused(400, str(exc)) from None
    hub.keys.invalidate()
    keys = await asyncio.to_thread(list_keys, hub.engine)
    # The one time the key is shown: this response only, never stored or logged.
    return page(
        "keys.html",
        viewer,
        keys=keys,
        destinations=list(hub.settings.destinations),
        permissions=sorted(allowed),
        created={"record": record, "key": plain},
    )


@action
async def revoke_partner_key(request: Request, viewer: Viewer, form) -> Response:
    hub = hub_of(request)
    try:
        key_id = int(request.path_params["key_id"])
    except ValueError:
        raise Refused(404, "no such key") from None
    revoked = await asyncio.to_thread(revoke_key, hub.engine, None, key_id)
    hub.keys.invalidate()
    return back("/console/keys", f"Revoked {len(revoked)} key(s).")
