"""The console's routes, mounted by ``headwater.server.app``: pages under ``/console/``
(``/`` leads there), their actions, and the vendored htmx and uPlot files."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from headwater.console import actions, outputs, pages
from headwater.console.render import HERE


async def home(_request: Request) -> Response:
    return RedirectResponse("/console/", status_code=303)


ROUTES = [
    Route("/", home, methods=["GET"]),
    Route("/console", home, methods=["GET"]),
    Route("/console/", pages.overview, methods=["GET"]),
    Route("/console/login", pages.login_form, methods=["GET"]),
    Route("/console/login", actions.login, methods=["POST"]),
    Route("/console/logout", actions.logout, methods=["POST"]),
    Route("/console/syncs/{name}", pages.sync_page, methods=["GET"]),
    Route("/console/syncs/{name}/run", actions.run_now, methods=["POST"]),
    Route("/console/syncs/{name}/dry-run", actions.dry_run, methods=["POST"]),
    Route("/console/schedules/{name}/pause", actions.pause, methods=["POST"]),
    Route("/console/schedules/{name}/resume", actions.resume, methods=["POST"]),
    Route("/console/runs/{run_id}", pages.run_page, methods=["GET"]),
    Route("/console/runs/{run_id}/errors.csv", pages.run_errors_csv, methods=["GET"]),
    Route("/console/streams/{name}", pages.stream_page, methods=["GET"]),
    Route("/console/streams/{name}/events", pages.stream_events, methods=["GET"]),
    Route("/console/streams/{name}/pause", actions.pause_stream, methods=["POST"]),
    Route("/console/streams/{name}/resume", actions.resume_stream, methods=["POST"]),
    Route("/console/audiences", outputs.audiences_page, methods=["GET"]),
    Route("/console/audiences/{name}", outputs.audience_page, methods=["GET"]),
    Route("/console/audiences/{name}/stays", outputs.audience_stays, methods=["GET"]),
    Route("/console/exports", outputs.exports_page, methods=["GET"]),
    Route("/console/dead-letters", pages.dead_letters_page, methods=["GET"]),
    Route("/console/dead-letters/replay", actions.replay, methods=["POST"]),
    Route("/console/keys", pages.keys_page, methods=["GET"]),
    Route("/console/keys", actions.create_partner_key, methods=["POST"]),
    Route("/console/keys/{key_id}/revoke", actions.revoke_partner_key, methods=["POST"]),
    Mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static"),
]
