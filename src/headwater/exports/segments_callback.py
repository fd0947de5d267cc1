"""``POST /exports/segments/callback/<token>``: Braze's "the export is ready" call, hosted
by ``serve``, waking the segment export that waits for those files instead of letting it
sleep until its next poll. Polling stays: a callback Braze never makes (or one that cannot
reach serve) only costs the wait until the next poll.

The token is the authentication: 32 random bytes per export, in the URL because Braze's
callback sends no header of ours. The route answers 404 to a token it never issued, the
same answer as for any unknown path, so guessing learns nothing.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.braze.errors import MSG_NOT_FOUND, BrazeError
from headwater.braze.frontdoor import json_response
from headwater.runtime.hub import hub_of
from headwater.state import export_callbacks

PATH = "/exports/segments/callback/"
STORE_CHECK_SECONDS = 2.0  # how often a waiting export looks for a callback serve recorded
_TOKEN_CHARS = 43  # token_urlsafe(32)

_waiting: dict[str, threading.Event] = {}  # exports waiting in this process, by token
_lock = threading.Lock()


class Callback:
    """One export's callback: the URL Braze is given, and ``woken`` for the wait."""

    def __init__(self, engine: Engine, base_url: str, clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.token = secrets.token_urlsafe(32)
        self.url = base_url.rstrip("/") + PATH + self.token
        self.clock = clock
        self._event = threading.Event()
        self._checked = clock()
        self._seen = False
        export_callbacks.issue(engine, self.token)
        with _lock:
            _waiting[self.token] = self._event

    def woken(self) -> bool:
        """True once, when the callback has come (told in this process at once, or found
        in the state store when serve is another process)."""
        if self._seen:
            return False
        arrived = self._event.is_set()
        if not arrived and self.clock() - self._checked >= STORE_CHECK_SECONDS:
            self._checked = self.clock()
            arrived = export_callbacks.arrived(self.engine, self.token)
        self._seen = arrived
        return arrived

    def close(self) -> None:
        with _lock:
            _waiting.pop(self.token, None)
        export_callbacks.forget(self.engine, self.token)


async def receive(request: Request) -> Response:
    token = request.path_params["token"]
    if len(token) != _TOKEN_CHARS:
        raise BrazeError(404, MSG_NOT_FOUND)
    hub = hub_of(request)
    if not await hub.outbox.write(export_callbacks.receive, hub.engine, token):
        raise BrazeError(404, MSG_NOT_FOUND)
    with _lock:
        event = _waiting.get(token)
    if event is not None:
        event.set()
    return json_response(200, {"message": "success"})


ROUTES = [Route(PATH + "{token}", receive, methods=["POST"])]
