"""Jinja2 rendering for the console: autoescaped templates from this package, and the
responses every page shares (HTML, a redirect to log in, a refusal page)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from headwater.console.auth import Refused, Viewer

HERE = Path(__file__).parent
env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _json(value) -> Markup:
    """Pretty JSON for a <pre> (escaped by the caller's autoescape through Markup.escape)."""
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return Markup.escape(text)


def _script_json(value) -> Markup:
    """JSON safe inside a <script> block: no closing tag can be spelled in it."""
    text = orjson.dumps(value).decode()
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


env.filters.update(when=_when, seconds=_seconds, pretty=_json, script_json=_script_json)


def render(template: str, **context) -> str:
    return env.get_template(template).render(**context)


def page(template: str, viewer: Viewer | None, status: int = 200, **context) -> HTMLResponse:
    html = render(template, viewer=viewer, **context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
}


def refused(request: Request, exc: Refused) -> Response:
    """Not logged in: a browser goes to the login page; anything else gets the status."""
    wants_html = "text/html" in request.headers.get("accept", "")
    if exc.status == 401 and wants_html and request.method == "GET":
        return RedirectResponse("/console/login", status_code=303)
    if wants_html:
        return page("refused.html", None, status=exc.status, message=exc.message)
    return Response(
        orjson.dumps({"message": exc.message}),
        status_code=exc.status,
        media_type="application/json",
    )
