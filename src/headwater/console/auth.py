"""Who is asking, and may they act: a login session (cookie) or a console API token
(``Authorization: Bearer hwu_...``), and the CSRF check on every POST.

The session cookie is HttpOnly and SameSite=Lax, Secure when the request came over https
or ``console.secure_cookies`` is set. A POST made with a session must carry the session's
CSRF token (form field ``csrf`` or header ``X-CSRF-Token``); a POST made with a bearer
token carries none (a browser never adds that header by itself). The login form, before
any session, is guarded by a double-submit cookie."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from headwater.bearer import bearer_token
from headwater.runtime.hub import hub_of
from headwater.state import users

SESSION_COOKIE = "hw_session"
LOGIN_CSRF_COOKIE = "hw_login_csrf"
MAX_FORM_BYTES = 64 * 1024


class Refused(Exception):
    """A request the console will not serve: ``status`` says why (401, 403, 400)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Viewer:
    user: users.User
    csrf: str | None  # None: authenticated by an API token

    @property
    def can_act(self) -> bool:
        return not self.user.read_only


def secure(request: Request) -> bool:
    return request.url.scheme == "https" or hub_of(request).settings.console.secure_cookies


async def viewer_of(request: Request) -> Viewer | None:
    engine = hub_of(request).engine
    token = bearer_token(request.headers.get("authorization"))
    if token:
        user = await asyncio.to_thread(users.user_for_token, engine, token)
        return Viewer(user, None) if user else None
    sid = request.cookies.get(SESSION_COOKIE)
    if not sid:
        return None
    session = await asyncio.to_thread(users.session_for, engine, sid)
    return Viewer(session.user, session.csrf) if session else None


async def form_of(request: Request) -> dict[str, list[str]]:
    """The urlencoded body of a POST, bounded in size."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, "form too large")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=1000)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "unreadable form") from None


def first(form: dict[str, list[str]], name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0] if values else default


def check_csrf(request: Request, viewer: Viewer, form: dict[str, list[str]]) -> None:
    if viewer.csrf is None:  # a bearer token: no cookie a browser could replay
        return
    presented = request.headers.get("x-csrf-token") or first(form, "csrf")
    if not presented or not hmac.compare_digest(presented.encode(), viewer.csrf.encode()):
        raise Refused(403, "missing or wrong CSRF token: reload the page and try again")


async def acting(request: Request) -> tuple[Viewer, dict[str, list[str]]]:
    """For a POST that changes something: a viewer who may act, and the checked form."""
    viewer = await viewer_of(request)
    if viewer is None:
        raise Refused(401, "log in first")
    form = await form_of(request)
    check_csrf(request, viewer, form)
    if not viewer.can_act:
        raise Refused(403, f"user {viewer.user.name!r} is read-only")
    return viewer, form


def set_session_cookie(request: Request, response: Response, sid: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        sid,
        max_age=int(users.SESSION_SECONDS),
        path="/",
        httponly=True,
        samesite="lax",
        secure=secure(request),
    )


def login_csrf(request: Request) -> str:
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def set_login_csrf(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        value,
        max_age=3600,
        path="/console/login",
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )
