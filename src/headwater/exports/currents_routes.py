"""``POST /currents/<name>``: Braze's custom HTTP Currents connector lands here.

The answer is chosen for what Braze does with it (its connector's retry rules):

* 401 for a missing or wrong token, checked on every batch, empty ones included (Braze
  halts the connector and retries later, so nothing is lost while the token is fixed);
* 413 for a batch over 100 events or over ``max_body_bytes`` (Braze splits it and resends);
* 400 for a malformed batch (not JSON, not ``{"events": [...]}``, or holding any event
  without a string ``event_type``/``id``...): nothing of it is landed and the body is kept
  in ``currents_rejected`` for inspection. Braze then resends the events one per request:
  the good ones land then, and only the bad one is refused again (and dropped by Braze).
  So a malformed event costs no good event, and no batch is ever half landed;
* 200 once the batch is committed to the state store (with the outbox's forward entries
  in the same transaction): a crash after that loses nothing, and the landing worker moves
  it into the Parquet landing, once per event ``id`` however often Braze resends it.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.bearer import bearer_token
from headwater.braze.errors import MSG_NOT_FOUND, BrazeError
from headwater.braze.frontdoor import json_response, read_body
from headwater.exports.currents_events import MAX_EVENTS_PER_BATCH, MalformedBatch, parse_batch
from headwater.runtime.hub import hub_of
from headwater.state.currents import (
    BATCH_KEY,
    batch_row,
    currents_batches,
    currents_rejected,
    rejected_row,
)
from headwater.state.outbox import OutboxEntry
from headwater.state.seen import content_key

VERSION_HEADER = "braze-currents-version"
SUPPORTED_VERSIONS = {"1"}
MSG_BAD_TOKEN = "Invalid or missing bearer token for this Currents receiver"
FORWARD_KIND = "currents"


def forward_destination(name: str) -> str:
    """The outbox destination a receiver's forward worker drains."""
    return f"currents:{name}"


async def receive(request: Request) -> Response:
    hub = hub_of(request)
    name = request.path_params["name"]
    receiver = hub.settings.currents.get(name)
    if receiver is None:
        raise BrazeError(404, MSG_NOT_FOUND)
    presented = bearer_token(request.headers.get("authorization")) or ""
    expected = receiver.token.get_secret_value()
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise BrazeError(401, MSG_BAD_TOKEN)
    limit = receiver.max_body_bytes
    try:
        body = await read_body(request, limit)
    except BrazeError as exc:
        if exc.status == 413:
            raise BrazeError(
                413, f"The batch is larger than {limit} bytes; send fewer events"
            ) from None
        raise
    if not body.strip():
        return _accepted(0)  # Braze's empty batch: a no-op once the token is right
    version = request.headers.get(VERSION_HEADER)
    if version is not None and version.strip() not in SUPPORTED_VERSIONS:
        await _reject(hub, name, body, f"unsupported Braze-Currents-Version {version[:20]!r}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        too_deep = "depth limit" in str(exc)  # orjson stops at 1,024 levels
        reason = "the body nests deeper than 1,024 levels" if too_deep else "the body is not JSON"
        await _reject(hub, name, body, reason)
    events = data.get("events") if isinstance(data, dict) else None
    if isinstance(events, list) and len(events) > MAX_EVENTS_PER_BATCH:
        raise BrazeError(413, f"At most {MAX_EVENTS_PER_BATCH} events per batch")
    try:
        parsed = parse_batch(data)
    except MalformedBatch as exc:
        await _reject(hub, name, body, str(exc), exc.problems)
    if not parsed.events:
        return _accepted(0)
    now = time.time()
    entries = []
    if receiver.forward is not None:
        destination = forward_destination(name)
        entries = [
            OutboxEntry(destination, destination, FORWARD_KIND, orjson.dumps(event), 0,
                        content_key(destination, FORWARD_KIND, event_id.encode()))
            for event, event_id in zip(parsed.events, parsed.ids, strict=True)
        ]  # fmt: skip
    # Stored re-encoded, not as posted: the landing reads it with another JSON parser, which
    # must see exactly what was checked here (a key given twice is read differently by
    # different parsers). Encoding is the cheap direction: ~0.5 us per event.
    row = batch_row(name, orjson.dumps(data), parsed.ids, now)
    await hub.outbox.enqueue(entries, [(currents_batches, [row], BATCH_KEY)])
    return _accepted(len(parsed.ids))


async def _reject(hub, name: str, body: bytes, reason: str, problems: Sequence[str] = ()) -> None:
    """Keep a malformed batch for inspection (committed before the 400), then refuse it."""
    row = rejected_row(name, 400, reason, body, time.time())
    await hub.outbox.enqueue([], [(currents_rejected, [row], BATCH_KEY)])
    raise BrazeError(400, reason, [{"type": p} for p in list(problems)[:100]])


def _accepted(count: int) -> Response:
    return json_response(200, {"message": "success", "events": count})


# A plain Starlette route, as the gateway's: no dependency solving on the hot path.
ROUTES = [Route("/currents/{name}", receive, methods=["POST"])]
