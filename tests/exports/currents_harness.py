"""Shared by the Currents tests: a hub with receivers on a real port, Braze-shaped events,
reading what landed with DuckDB, and a recording HTTP endpoint for forwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import httpx
import orjson
from gateway_harness import make_settings, running_gateway
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.config.currents import CurrentsReceiver
from headwater.testing import serve_in_thread

TOKEN = "currents-token-0123456789"
FORWARD_TOKEN = "forward-token-0123456789"


def settings_for(state_url: str, landing: Path, *, run_workers: bool = True, **receivers):
    """Serve settings with ``receivers`` (name -> CurrentsReceiver options; default one
    receiver ``braze`` with ``TOKEN``) and no Braze destination."""
    settings = make_settings(state_url, {}, run_workers=run_workers)
    receivers = receivers or {"braze": {}}
    settings.currents = {
        name: CurrentsReceiver(token=SecretStr(TOKEN), **options)
        for name, options in receivers.items()
    }
    settings.landing_dir = landing
    return settings


@contextlib.contextmanager
def running_hub(state_url: str, landing: Path, **kwargs):
    with running_gateway(settings_for(state_url, landing, **kwargs)) as gateway:
        yield gateway


def event(kind: str = "users.behaviors.CustomEvent", event_id: str | None = None, **props) -> dict:
    return {
        "event_type": kind,
        "id": event_id or str(uuid.uuid4()),
        "time": 1_700_000_000,
        "user": {"user_id": "b1", "external_user_id": "u1", "timezone": "Europe/Paris"},
        "properties": props or {"name": "opened_app", "app_id": "app1"},
    }


def post(url: str, body: object, *, token: str | None = TOKEN, name: str = "braze", raw=None):
    headers = {"Braze-Currents-Version": "1", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = raw if raw is not None else orjson.dumps(body)
    return httpx.post(f"{url}/currents/{name}", content=content, headers=headers, timeout=30)


def landed(landing: Path, receiver: str = "braze", kind: str | None = None) -> list[dict]:
    """Every landed row of ``receiver`` (of one type, or all types' envelopes)."""
    files = sorted((landing / "currents" / receiver).glob(f"{kind or '*'}/*.parquet"))
    if not files:
        return []
    columns = "*" if kind else "id, event_type, extra"
    query = f"SELECT {columns} FROM read_parquet(?, union_by_name=true)"
    with duckdb.connect() as db:
        cursor = db.execute(query, [[str(f) for f in files]])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass
class CurrentsSink:
    """Records what is posted to it; ``faults`` are statuses to answer next, and events
    whose id is in ``refuse`` get a 400 for any batch holding them."""

    batches: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    faults: list[int] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    statuses: list[int] = field(default_factory=list)

    async def receive(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        ids = {e["id"] for e in body["events"]}
        if self.faults:
            status = self.faults.pop(0)
        elif ids & self.refuse:
            status = 400
        else:
            status = 200
            self.batches.append(body)
            self.headers.append(dict(request.headers))
        self.statuses.append(status)
        return Response(b"{}", status, media_type="application/json")

    def ids(self) -> list[str]:
        return [e["id"] for b in self.batches for e in b["events"]]


@contextlib.contextmanager
def currents_sink() -> Iterator[tuple[CurrentsSink, str]]:
    sink = CurrentsSink()
    app = Starlette(routes=[Route("/in", sink.receive, methods=["POST"])])
    with serve_in_thread(app) as server:
        yield sink, f"{server.url}/in"
