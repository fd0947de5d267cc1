"""The console's pages (GET): each reads what it shows in a worker thread (the state store
is synchronous) and renders it; none shows a secret (partner keys after creation,
destination API keys, passwords and redacted payload fields never reach a template)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from sqlalchemy import bindparam, func, select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from headwater.config.base import redact_url
from headwater.console import queries
from headwater.console.auth import Refused, Viewer, login_csrf, set_login_csrf, viewer_of
from headwater.console.jobs import project_jobs
from headwater.console.render import SECURITY_HEADERS, page, refused
from headwater.runtime.hub import GATEWAY_STREAM, hub_of
from headwater.runtime.inspector import REDACTED
from headwater.state import runs
from headwater.state.dead_letters import DeadLetter, dead_letters, list_dead_letters
from headwater.state.keys import list_keys
from headwater.state.outbox import outbox
from headwater.state.pauses import HELD, held_rows, list_pauses

Handler = Callable[[Request, Viewer], Awaitable[Response]]
DEAD_LETTERS_PAGE = 50
INSPECTOR_SHOWN = 20
HELD_SHOWN = 10_000  # a paused stream's held rows are counted up to this many
_QUEUED = select(func.coalesce(func.sum(outbox.c.objects), 0)).where(
    outbox.c.destination == bindparam("destination"), outbox.c.available_at < HELD
)


def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Every page needs a viewer (session or token); refusals render, never leak."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            viewer = await viewer_of(request)
            if viewer is None:
                raise Refused(401, "log in first")
            return await handler(request, viewer)
        except Refused as exc:
            return refused(request, exc)

    return wrapped


def _note(request: Request) -> str:
    """The line an action left for the page it went back to (escaped when shown)."""
    return request.query_params.get("note", "")[:300]


def _int(request: Request, name: str, default: int = 1) -> int:
    try:
        return max(1, min(int(request.query_params.get(name, default)), 1_000_000))
    except ValueError:
        return default


async def login_form(request: Request) -> Response:
    if await viewer_of(request) is not None:
        return RedirectResponse("/console/", status_code=303)
    token = login_csrf(request)
    response = page("login.html", None, csrf=token, error=None)
    set_login_csrf(request, response, token)
    return response


def _overview(hub) -> dict:
    engine = hub.engine
    project = hub.project
    configured = list(project_jobs(project))
    names = queries.job_names(engine, configured)
    schedules = []
    if hub.scheduler is not None:
        from headwater.schedules.view import describe_schedules

        scheduler = hub.scheduler
        schedules = describe_schedules(engine, scheduler.jobs, scheduler.clock())
    with engine.connect() as conn:
        letters = dict(
            conn.execute(
                select(dead_letters.c.stream, func.count())
                .where(dead_letters.c.replayed_at.is_(None))
                .group_by(dead_letters.c.stream)
            ).all()
        )
        # What waits for each destination, held rows left out: a range of
        # ix_outbox_claim, so a paused stream's backlog costs this page nothing.
        by_destination = {
            name: int(conn.execute(_QUEUED, {"destination": name}).scalar_one())
            for name in hub.settings.destinations
        }
    counters = hub.counters.read()
    paused = list_pauses(engine)
    held = {name: held_rows(engine, name, HELD_SHOWN + 1) for name in paused}
    streams = [
        {
            "name": name,
            "counters": counters.get(name, {}),
            "dead_letters": letters.get(name, 0),
            "paused": paused.get(name),
            "held": held.get(name, 0),
        }
        for name in [GATEWAY_STREAM, *hub.settings.streams]
    ]
    destinations = [
        {"name": name, "url": redact_url(dest.url), "queued": by_destination.get(name, 0)}
        for name, dest in hub.settings.destinations.items()
    ]
    last = queries.last_runs(engine, names)
    failing = [n for n, r in last.items() if r.status in (runs.FAILED, runs.INTERRUPTED)]
    return {
        "syncs": [{"name": n, "last": last.get(n), "configured": n in configured} for n in names],
        "schedules": schedules,
        "streams": streams,
        "destinations": destinations,
        "held_shown": HELD_SHOWN,
        "health": {
            "outbox": sum(by_destination.values()),
            "held": sum(held.values()),
            "dead_letters": sum(letters.values()),
            "running": queries.status_counts(engine)["running"],
            "failing": failing,
        },
    }


@guarded
async def overview(request: Request, viewer: Viewer) -> Response:
    data = await asyncio.to_thread(_overview, hub_of(request))
    return page("overview.html", viewer, **data)


@guarded
async def sync_page(request: Request, viewer: Viewer) -> Response:
    name = request.path_params["name"]
    hub = hub_of(request)
    number = _int(request, "page")

    def read():
        return (
            queries.runs_page(hub.engine, name, number),
            queries.chart_data(hub.engine, name),
            bool(queries.last_runs(hub.engine, [name])),
        )

    history, chart, has_runs = await asyncio.to_thread(read)
    project = hub.project
    scheduler = hub.scheduler
    paused = None
    if scheduler is not None and name in scheduler.jobs:
        from headwater.state.schedules import job_states

        states = await asyncio.to_thread(job_states, hub.engine)
        paused = states[name].paused if name in states else False
    known = project is not None and name in project.syncs
    if not known and not has_runs:
        raise Refused(404, f"no sync named {name!r}")
    return page(
        "sync.html",
        viewer,
        name=name,
        runs=history,
        chart=chart,
        runnable=known,
        paused=paused,
        request_note=_note(request),
    )


def _run_id(request: Request) -> int:
    try:
        return int(request.path_params["run_id"])
    except ValueError:
        raise Refused(404, "no such run") from None


@guarded
async def run_page(request: Request, viewer: Viewer) -> Response:
    run_id = _run_id(request)
    engine = hub_of(request).engine
    search, within = _search(request)
    after = _int(request, "after", 0) if request.query_params.get("after") else 0

    def read():
        errors = queries.errors_page(engine, run_id, search, after, within)
        return runs.get_run(engine, run_id), errors

    run, errors = await asyncio.to_thread(read)
    if run is None:
        raise Refused(404, f"no run {run_id}")
    secret = hub_of(request).inspector.redactor.is_secret
    shown = [{"error": e, "value": _value_shown(e, secret)} for e in errors.items]
    return page(
        "run.html", viewer, run=run, errors=errors, shown=shown, search=search, within=within,
        after=after,
    )  # fmt: skip


VALUE_SHOWN = 120  # characters of an offending value in the table (the CSV has them all)


def _value_shown(error: runs.RowErrorRecord, secret) -> str | None:
    """The offending value as the run page shows it: never a secret field's, cut short."""
    value = error.value
    if value is None:
        return None
    if secret(error.field):
        return REDACTED
    return value if len(value) <= VALUE_SHOWN else value[: VALUE_SHOWN - 1] + "…"


def _search(request: Request) -> tuple[str, str]:
    """The run page's search: a prefix, of the row key or of the offending value."""
    within = request.query_params.get("in", "row_key")
    return request.query_params.get("q", "")[:200], (
        within if within in queries.SEARCHABLE else "row_key"
    )


@guarded
async def run_errors_csv(request: Request, viewer: Viewer) -> Response:
    run_id = _run_id(request)
    engine = hub_of(request).engine
    search, within = _search(request)
    run = await asyncio.to_thread(runs.get_run, engine, run_id)
    if run is None:
        raise Refused(404, f"no run {run_id}")
    secret = hub_of(request).inspector.redactor.is_secret

    async def body():
        chunks = queries.errors_csv(engine, run_id, search, within, secret)
        while True:
            chunk = await asyncio.to_thread(next, chunks, None)
            if chunk is None:
                return
            yield chunk

    filename = f"run-{run_id}-row-errors.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'},
    )


def stream_name(request: Request) -> str:
    name = request.path_params["name"]
    if name != GATEWAY_STREAM and name not in hub_of(request).settings.streams:
        raise Refused(404, f"no stream named {name!r}")
    return name


@guarded
async def stream_page(request: Request, viewer: Viewer) -> Response:
    name = stream_name(request)
    hub = hub_of(request)

    def read():
        pause = list_pauses(hub.engine).get(name)
        held = held_rows(hub.engine, name, HELD_SHOWN + 1) if pause else 0
        return hub.inspector.recent(name, INSPECTOR_SHOWN), pause, held

    events, pause, held = await asyncio.to_thread(read)
    counters = hub.counters.read().get(name, {})
    config = hub.settings.streams.get(name)
    return page(
        "stream.html",
        viewer,
        name=name,
        events=events,
        counters=counters,
        config=config,
        pause=pause,
        held=held,
        held_shown=HELD_SHOWN,
        request_note=_note(request),
    )


@guarded
async def stream_events(request: Request, viewer: Viewer) -> Response:
    """The inspector's fragment htmx swaps in every few seconds: this stream's only."""
    name = stream_name(request)
    hub = hub_of(request)
    events = await asyncio.to_thread(hub.inspector.recent, name, INSPECTOR_SHOWN)
    return page("stream_events.html", viewer, name=name, events=events)


def _letters(engine, stream: str, after: int, show_replayed: bool) -> list[DeadLetter]:
    """One page, and one more letter to know whether there is a next page."""
    return list_dead_letters(
        engine,
        stream=stream or None,
        include_replayed=show_replayed,
        limit=DEAD_LETTERS_PAGE + 1,
        after=after,
    )


@guarded
async def dead_letters_page(request: Request, viewer: Viewer) -> Response:
    import orjson

    hub = hub_of(request)
    stream = request.query_params.get("stream", "")[:200]
    after = _int(request, "after", 0) if request.query_params.get("after") else 0
    show_replayed = request.query_params.get("all") == "1"
    letters = await asyncio.to_thread(_letters, hub.engine, stream, after, show_replayed)
    more = len(letters) > DEAD_LETTERS_PAGE
    letters = letters[:DEAD_LETTERS_PAGE]
    shown = []
    for letter in letters:
        try:
            payload = hub.inspector.redactor.redact(orjson.loads(letter.payload))
        except orjson.JSONDecodeError:
            payload = "(not JSON)"
        shown.append({"letter": letter, "payload": payload})
    return page(
        "dead_letters.html",
        viewer,
        letters=shown,
        stream=stream,
        show_replayed=show_replayed,
        next_after=letters[-1].id if more else None,
        request_note=_note(request),
    )


@guarded
async def keys_page(request: Request, viewer: Viewer) -> Response:
    hub = hub_of(request)
    keys = await asyncio.to_thread(list_keys, hub.engine)
    return page(
        "keys.html",
        viewer,
        keys=keys,
        destinations=list(hub.settings.destinations),
        permissions=key_permissions(),
        created=None,
        request_note=_note(request),
    )


def key_permissions() -> list[str]:
    """Braze's endpoint permissions and Headwater's own (as ``headwater keys create``)."""
    from headwater.braze.endpoints import PERMISSIONS
    from headwater.state.keys import HUB_PERMISSIONS

    return sorted({*PERMISSIONS, *HUB_PERMISSIONS})
