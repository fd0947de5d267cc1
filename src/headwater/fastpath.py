"""Hot routes served straight from the ASGI scope, past the router and FastAPI's request
machinery (exception, telemetry and body-limit middlewares, dependency solving).

The sandbox and the gateway each answer one endpoint far more often than all the others
(``POST /users/track``); on a single-event post that machinery cost more than the
endpoint's own work. The endpoint code is the same plain Starlette function either way;
``errors`` renders what it raises the way the app's exception handlers would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorRenderer = Callable[[Exception], Response | None]  # None: let it propagate


class FastPath:
    """ASGI middleware: ``routes`` maps (method, exact path) to an endpoint."""

    def __init__(
        self,
        app,
        routes: Mapping[tuple[str, str], Endpoint],
        errors: ErrorRenderer | None = None,
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.errors = errors

    async def __call__(self, scope, receive, send) -> None:
        endpoint = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        try:
            response = await endpoint(Request(scope, receive))
        except Exception as exc:
            response = self.errors(exc) if self.errors is not None else None
            if response is None:
                raise
        await response(scope, receive, send)


__all__ = ["FastPath"]
