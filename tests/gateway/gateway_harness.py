"""Test harness shared by the gateway, streams, delivery and e2e tests: a small
Braze-shaped receiver with fault injection, and a gateway on a real port.

The receiver validates with the real contract (``headwater.braze.track``) so per-object
errors are the ones Braze (and the sandbox) would give; it exists so delivery can be
tested before, and independently of, the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.braze.errors import BrazeError
from headwater.braze.track import parse_track_request
from headwater.config.streams import parse_streams
from headwater.runtime.hub import Hub
from headwater.runtime.settings import DeliverySettings, DestinationSettings, ServeSettings
from headwater.server.app import create_app
from headwater.state.keys import create_key
from headwater.testing import serve_in_thread

RECEIVER_KEY = "receiver-key-0123456789"
METRICS_TOKEN = "metrics-token-0123456789"


@dataclass
class FakeBraze:
    """Records every accepted object; ``faults`` is a list of statuses to answer next."""

    key: str = RECEIVER_KEY
    requests: list[dict] = field(default_factory=list)
    objects: dict[str, list[dict]] = field(
        default_factory=lambda: {"attributes": [], "events": [], "purchases": []}
    )
    users_by_email: dict[str, dict] = field(default_factory=dict)
    aliases: list[dict] = field(default_factory=list)
    export_calls: int = 0
    faults: list[int] = field(default_factory=list)
    latency_seconds: float = 0.0
    status_counts: dict[int, int] = field(default_factory=dict)
    reject_event_names: set[str] = field(default_factory=set)  # answered as per-object errors

    def _answer(self, status: int, body: dict, headers: dict | None = None) -> Response:
        self.status_counts[status] = self.status_counts.get(status, 0) + 1
        return Response(orjson.dumps(body), status, media_type="application/json", headers=headers)

    async def _gate(self, request: Request) -> Response | None:
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return self._answer(401, {"message": "Invalid API key"})
        if self.faults:
            status = self.faults.pop(0)
            headers = {"Retry-After": "0"} if status == 429 else None
            return self._answer(status, {"message": f"injected {status}"}, headers)
        return None

    async def track(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        body = orjson.loads(await request.body())
        try:
            parsed = parse_track_request(body)
        except BrazeError as exc:
            return self._answer(exc.status, exc.body())
        self.requests.append(body)
        rejected = []
        for index, obj in parsed.events:
            if obj["name"] in self.reject_event_names:
                rejected.append(
                    {"type": "injected rejection", "input_array": "events", "index": index}
                )
        parsed.events = [
            (i, o) for i, o in parsed.events if o["name"] not in self.reject_event_names
        ]
        parsed.errors.extend(rejected)
        for kind in ("attributes", "events", "purchases"):
            self.objects[kind].extend(obj for _, obj in getattr(parsed, kind))
        status, answer = parsed.response()
        return self._answer(status, answer)

    async def export_ids(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        self.export_calls += 1
        body = orjson.loads(await request.body())
        users = []
        email = body.get("email_address")
        if email and email in self.users_by_email:
            users.append(self.users_by_email[email])
        for external_id in body.get("external_ids") or []:
            users.extend(
                u for u in self.users_by_email.values() if u.get("external_id") == external_id
            )
        return self._answer(201, {"message": "success", "users": users, "invalid_user_ids": []})

    async def alias_new(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        body = orjson.loads(await request.body())
        self.aliases.extend(body.get("user_aliases") or [])
        return self._answer(
            201, {"message": "success", "aliases_processed": len(body["user_aliases"])}
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/users/track", self.track, methods=["POST"]),
                Route("/users/export/ids", self.export_ids, methods=["POST"]),
                Route("/users/alias/new", self.alias_new, methods=["POST"]),
            ]
        )

    def events(self, name: str | None = None) -> list[dict]:
        return [e for e in self.objects["events"] if name is None or e["name"] == name]


@contextlib.contextmanager
def fake_braze(**kwargs) -> Iterator[tuple[FakeBraze, str]]:
    fake = FakeBraze(**kwargs)
    with serve_in_thread(fake.app()) as server:
        yield fake, server.url


def make_settings(
    state_url: str,
    destinations: dict[str, str],
    streams: dict | None = None,
    *,
    key: str = RECEIVER_KEY,
    run_workers: bool = True,
    metrics_token: str | None = METRICS_TOKEN,
    destination: dict | None = None,
    **delivery,
) -> ServeSettings:
    """``destination``: options of every destination (tries per request and their backoff,
    kept short here so fault tests stay quick); ``delivery``: ``gateway.delivery``."""
    destination = {"max_attempts": 3, "retry_base_seconds": 0.01, **(destination or {})}
    delivery.setdefault("linger_seconds", 0.01)
    delivery.setdefault("poll_seconds", 0.1)
    delivery.setdefault("retry_base_seconds", 0.05)
    delivery.setdefault("retry_max_seconds", 0.2)
    return ServeSettings(
        state_url=state_url,
        destinations={
            name: DestinationSettings(name=name, url=url, api_key=SecretStr(key), **destination)
            for name, url in destinations.items()
        },
        streams=parse_streams(streams or {}, set(destinations)),
        delivery=DeliverySettings(**delivery),
        run_workers=run_workers,
        metrics_token=SecretStr(metrics_token) if metrics_token else None,
    )


@dataclass
class RunningGateway:
    url: str
    hub: Hub

    def metrics(self) -> str:
        """``GET /metrics`` with the token ``make_settings`` configures."""
        answer = httpx.get(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        answer.raise_for_status()
        return answer.text

    def key(self, name: str = "partner", *perms: str, destination: str | None = None) -> str:
        plain = create_key(self.hub.engine, name, list(perms) or ["users.track"], destination)[1]
        self.hub.keys.invalidate()  # usable at once, not within the ring's refresh
        return plain


@contextlib.contextmanager
def running_gateway(settings: ServeSettings) -> Iterator[RunningGateway]:
    hub = Hub(settings)
    app = create_app(settings, hub)
    with serve_in_thread(app) as server:
        yield RunningGateway(server.url, hub)


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.02) -> None:
    """Poll until ``predicate()`` holds; the timeout only bounds a failure (a loaded machine
    may take its time), so it is generous."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


# How long a ``serve`` or ``sandbox`` process may take to answer. It only bounds a failure
# (a start that hangs), so it is generous: a loaded CI machine may take its time importing.
START_SECONDS = 120.0


def wait_for_start(
    process: subprocess.Popen,
    url: str,
    *,
    name: str = "serve",
    log: Path | None = None,
    status: int | None = None,
) -> None:
    """Wait until ``url`` answers (with ``status`` if given) or ``process`` exits; on a
    failure, kill the process and raise with its output (``log``, else its pipes)."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(
                f"{name} exited ({process.returncode}) before answering: {_output(process, log)}"
            )
        try:
            answer = httpx.get(url, timeout=2)
            if status is None or answer.status_code == status:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"{name} did not start: {_output(process, log)}")
        time.sleep(0.05)


def _output(process: subprocess.Popen, log: Path | None) -> str:
    if log is not None:
        return log.read_text(errors="replace")
    parts = [pipe.read() for pipe in (process.stdout, process.stderr) if pipe is not None]
    return b"".join(p if isinstance(p, bytes) else p.encode() for p in parts).decode(
        errors="replace"
    )


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


# A generic stream whose events may carry only an email (identity resolution), shared by
# the delivery tests and the end-to-end tests against the sandbox.
SHOP_STREAM = {
    "preset": "generic",
    "auth": {"type": "bearer", "token": "shop-token"},
    "alias_label": "shop_email",
    "mapping": {
        "events": [{"email": "{{ email }}", "external_id": "{{ user }}", "name": "{{ type }}",
                    "time": "{{ at }}"}],
    },
}  # fmt: skip


def headwater_cli(project: Path, *args: str, env: dict) -> str:
    """Run a ``headwater`` command on ``project`` in its own process; its output, or the
    test fails with what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "headwater", *args, "--project", str(project)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout
