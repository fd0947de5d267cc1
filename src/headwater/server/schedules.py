"""``/api/schedules``: the scheduled jobs of this server (as ``headwater schedules`` shows
them), and pause/resume. Reading needs a key with ``schedules.read``, pausing and resuming
``schedules.write``, checked the way every /api route checks keys."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.braze.errors import BrazeError
from headwater.braze.frontdoor import authorize
from headwater.runtime.hub import hub_of

READ_PERMISSION = "schedules.read"
WRITE_PERMISSION = "schedules.write"


def _json(status: int, body: object) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _scheduler(request: Request, permission: str):
    hub = hub_of(request)
    authorize(request, hub.keys, permission)
    if hub.scheduler is None:
        raise BrazeError(
            404, "This server runs no schedules (none in headwater.yml, or --no-schedules)"
        )
    return hub.scheduler


async def list_schedules(request: Request) -> Response:
    from headwater.schedules.view import describe_schedules

    scheduler = _scheduler(request, READ_PERMISSION)
    entries = describe_schedules(scheduler.engine, scheduler.jobs, scheduler.clock())
    return _json(200, {"schedules": entries})


async def _set_paused(request: Request, paused: bool) -> Response:
    from headwater.state.schedules import set_paused

    scheduler = _scheduler(request, WRITE_PERMISSION)
    name = request.path_params["name"]
    if name not in scheduler.jobs:
        raise BrazeError(404, f"No scheduled job named {name!r}")
    set_paused(scheduler.engine, name, paused)
    return _json(200, {"job": name, "paused": paused})


async def pause(request: Request) -> Response:
    return await _set_paused(request, True)


async def resume(request: Request) -> Response:
    return await _set_paused(request, False)


ROUTES = [
    Route("/api/schedules", list_schedules, methods=["GET"]),
    Route("/api/schedules/{name}/pause", pause, methods=["POST"]),
    Route("/api/schedules/{name}/resume", resume, methods=["POST"]),
]
