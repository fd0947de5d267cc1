"""``GET /metrics``: Prometheus text for the gateway and delivery, so an operator can alert
on a growing outbox or dead-letter queue. Built from the state store on each scrape (the
counters add up across serve processes), with this process's in-memory figures beside.

The figures name partner keys and their volumes, so they are shown only to a bearer token
(``serve --metrics-token``, ``HEADWATER_METRICS_TOKEN`` or ``metrics.token``), compared in
constant time; without a token configured the endpoint is off and says how to turn it on."""

from __future__ import annotations

import asyncio
import hmac

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.bearer import bearer_token
from headwater.braze.errors import BrazeError
from headwater.runtime.hub import hub_of
from headwater.state.dead_letters import count_dead_letters

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_OFF = (
    "/metrics is off until it has a token: start serve with --metrics-token, set "
    "HEADWATER_METRICS_TOKEN, or set metrics.token in headwater.yml; then scrape with "
    "Authorization: Bearer <token>"
)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_metrics(hub) -> str:
    lines = [
        "# HELP headwater_outbox_depth Objects committed and not yet delivered.",
        "# TYPE headwater_outbox_depth gauge",
        f"headwater_outbox_depth {hub.outbox.depth()}",
        "# HELP headwater_dead_letters Parked objects not yet replayed.",
        "# TYPE headwater_dead_letters gauge",
        f"headwater_dead_letters {count_dead_letters(hub.engine)}",
        "# HELP headwater_stream_objects_total Per-stream delivery counters (all processes).",
        "# TYPE headwater_stream_objects_total counter",
    ]
    for stream, values in sorted(hub.counters.read().items()):
        for name, value in sorted(values.items()):
            lines.append(
                f'headwater_stream_objects_total{{stream="{_label(stream)}",'
                f'counter="{_label(name)}"}} {value}'
            )
    lines += [
        "# HELP headwater_outbox_commits_total Group commits run by this process.",
        "# TYPE headwater_outbox_commits_total counter",
        f"headwater_outbox_commits_total {hub.outbox.commits}",
        "# HELP headwater_seen_event_keys Event keys of the duplicate window this process holds"
        " in memory (SQLite state; 0 on PostgreSQL, which keeps them in a table).",
        "# TYPE headwater_seen_event_keys gauge",
        f"headwater_seen_event_keys {len(hub.outbox.seen.known)}",
    ]
    return "\n".join(lines) + "\n"


def check_metrics_token(request: Request) -> None:
    """403 while no token is configured, 401 unless the request presents it."""
    token = hub_of(request).settings.metrics_token
    expected = token.get_secret_value() if token is not None else ""
    if not expected:  # an empty token would let in a request without one
        raise BrazeError(403, METRICS_OFF)
    presented = bearer_token(request.headers.get("authorization")) or ""
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise BrazeError(401, "Unauthorized: /metrics needs Authorization: Bearer <token>")


async def metrics(request: Request) -> Response:
    check_metrics_token(request)
    text = await asyncio.to_thread(render_metrics, hub_of(request))
    return Response(text, media_type=CONTENT_TYPE)


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
