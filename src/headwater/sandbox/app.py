"""The Braze-compatible sandbox: mount each service's router and render every error the
way Braze does, so no input ever gets a framework-shaped (or 500) answer."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from headwater import __version__
from headwater.braze.errors import MSG_NOT_FOUND, MSG_SERVER_ERROR
from headwater.braze.frontdoor import json_response
from headwater.fastpath import FastPath
from headwater.sandbox import control
from headwater.sandbox import currents as currents_control
from headwater.sandbox.currents import CurrentsEmitter
from headwater.sandbox.faults import FaultPlan
from headwater.sandbox.keys import ALL_PERMISSIONS, KeyRing
from headwater.sandbox.limits import RateLimiter
from headwater.sandbox.messaging import control as messaging_control
from headwater.sandbox.messaging import routes as messaging_routes
from headwater.sandbox.messaging.models import MessagingBackend
from headwater.sandbox.segments import routes as segment_routes
from headwater.sandbox.segments.exports import SegmentExports
from headwater.sandbox.settings import SandboxSettings
from headwater.sandbox.store import Store
from headwater.sandbox.users import routes as user_routes
from headwater.sandbox.users.models import UsersBackend

log = logging.getLogger(__name__)
CLI_KEY_NAME = "default"


@dataclass
class Sandbox:
    """Everything one sandbox instance holds; routes reach it as ``app.state.sandbox``."""

    settings: SandboxSettings
    store: Store
    keys: KeyRing
    users: UsersBackend
    limiter: RateLimiter
    faults: FaultPlan
    segment_exports: SegmentExports | None = None
    currents: CurrentsEmitter = field(default_factory=CurrentsEmitter)
    messaging: MessagingBackend | None = None

    @classmethod
    def open(cls, settings: SandboxSettings, clock: Callable[[], float] | None = None) -> Sandbox:
        """``clock`` (tests only) drives rate windows and the export-lag fault."""
        store = Store(settings.db)
        keys = KeyRing(store)
        if settings.keys_file:
            keys.load_file(settings.keys_file)
        if settings.key:
            keys.add_static(CLI_KEY_NAME, settings.key, [ALL_PERMISSIONS])
        users = UsersBackend(store, settings, clock or time.monotonic)
        sandbox = cls(
            settings=settings,
            store=store,
            keys=keys,
            users=users,
            limiter=RateLimiter(settings.rate_limits, clock or time.time),
            faults=FaultPlan(settings.faults, settings.seed),
            segment_exports=SegmentExports(
                store.segments, lambda: users.profiles, settings.faults, settings.seed
            ),
            currents=CurrentsEmitter(settings.currents_url, settings.currents_token),
            messaging=MessagingBackend(
                store, users, {"campaign": settings.campaigns, "canvas": settings.canvases}
            ),
        )
        sandbox.users.on_applied = sandbox.currents.record_track
        if sandbox.messaging is not None:
            sandbox.messaging.on_sent = sandbox.currents.record_send
        return sandbox


def create_app(settings: SandboxSettings | None = None, sandbox: Sandbox | None = None) -> FastAPI:
    sandbox = sandbox or Sandbox.open(settings or SandboxSettings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        if sandbox.segment_exports is not None:
            sandbox.segment_exports.close()
        sandbox.currents.close()
        sandbox.store.close()

    app = FastAPI(
        title="Headwater Braze sandbox",
        version=__version__,
        description="A Braze-compatible REST API for development, tests and demos.",
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    app.include_router(user_routes.router)
    app.add_middleware(FastPath, routes=user_routes.FAST_ROUTES)
    app.include_router(segment_routes.router)
    app.include_router(messaging_routes.router)
    app.include_router(control.router)
    app.include_router(currents_control.router)
    app.include_router(messaging_control.router)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if request.url.path.startswith("/_sandbox"):
            return json_response(exc.status_code, {"message": exc.detail})
        message = MSG_NOT_FOUND if exc.status_code == 404 else str(exc.detail)
        return json_response(exc.status_code, {"message": message})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError):
        errors = [
            {"type": e.get("msg", "invalid"), "loc": [str(p) for p in e.get("loc", ())]}
            for e in exc.errors()
        ]
        return json_response(400, {"message": "Bad Request", "errors": errors})

    @app.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception):  # pragma: no cover - a bug if reached
        log.exception("sandbox error", exc_info=exc)
        return json_response(500, {"message": MSG_SERVER_ERROR})

    return app
