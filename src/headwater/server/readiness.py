"""``GET /readyz``: can this process do its job right now?

Ready means the state store answers and every destination can be reached. The answer is
cached for ``READY_CACHE_SECONDS`` and probes arriving while a check runs share it, so no
number of load balancers and kubelets probing can flood Braze or the database. A
destination check is one unauthenticated GET of its base URL (any answer below 500 means
reachable): it spends no rate budget and sends no key. Each check has
``CHECK_TIMEOUT_SECONDS``; a state store that hangs ties up one thread at most, since a
new state check only starts once the last one returned. (``/healthz``, beside it, touches
nothing: it says the process is alive.)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable

import httpx
import orjson
from sqlalchemy import Engine, text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.runtime.hub import hub_of

READY_CACHE_SECONDS = 5.0
CHECK_TIMEOUT_SECONDS = 2.0
OK = "ok"

Check = Callable[[], Awaitable[None]]  # raises (with a reason) when not ready


class Readiness:
    """Runs named checks at most once per ``ttl`` and keeps the last outcome."""

    def __init__(
        self,
        checks: dict[str, Check],
        *,
        ttl: float = READY_CACHE_SECONDS,
        timeout: float = CHECK_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.checks = checks
        self.ttl = ttl
        self.timeout = timeout
        self.clock = clock
        self.runs = 0  # checks rounds run, for tests
        self._outcome: dict[str, str] | None = None
        self._expires = 0.0
        self._running: asyncio.Future | None = None

    async def outcome(self) -> dict[str, str]:
        """Each check's name and ``"ok"`` or why it is not ready."""
        if self._outcome is not None and self.clock() < self._expires:
            return self._outcome
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._check_all())
        return await asyncio.shield(self._running)

    async def _check_all(self) -> dict[str, str]:
        self.runs += 1
        names = list(self.checks)
        answers = await asyncio.gather(*(self._one(self.checks[n]) for n in names))
        self._outcome = dict(zip(names, answers, strict=True))
        self._expires = self.clock() + self.ttl
        return self._outcome

    async def _one(self, check: Check) -> str:
        try:
            await asyncio.wait_for(check(), self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except Exception as exc:
            return _reason(exc)
        return OK


def _reason(exc: BaseException) -> str:
    """The exception's type and first line: enough to act on, never a URL's password (the
    checks below raise nothing that carries one)."""
    detail = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__


class StateProbe:
    """``SELECT 1`` on the state store, on a daemon thread of its own: one that hangs (a
    PostgreSQL host gone silent) is reported, not joined by a pile of others, and cannot
    hold the process up when it exits."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._busy: threading.Thread | None = None

    async def __call__(self) -> None:
        if self._busy is not None and self._busy.is_alive():
            raise RuntimeError("the previous check is still waiting for the state store")
        loop = asyncio.get_running_loop()
        answered = loop.create_future()

        def ping() -> None:
            try:
                with self.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                outcome: BaseException | None = None
            except Exception as exc:
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_settle, answered, outcome)

        self._busy = threading.Thread(target=ping, name="readyz-state", daemon=True)
        self._busy.start()
        await answered


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if future.done():  # the check timed out and was cancelled meanwhile
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def destination_probe(url: str, timeout: float = CHECK_TIMEOUT_SECONDS) -> Check:
    async def check() -> None:
        async with httpx.AsyncClient(timeout=timeout) as http:
            answer = await http.get(url.rstrip("/") + "/")
        if answer.status_code >= 500:
            raise RuntimeError(f"answered {answer.status_code}")

    return check


def readiness_for(hub) -> Readiness:
    checks: dict[str, Check] = {"state": StateProbe(hub.engine)}
    for name, destination in hub.settings.destinations.items():
        checks[f"destinations.{name}"] = destination_probe(destination.url)
    return Readiness(checks)


def _json(status: int, body: dict) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def readyz(request: Request) -> Response:
    state = request.app.state
    shutdown = getattr(state, "shutdown", None)
    if shutdown is not None and shutdown.stopping:
        return _json(503, {"status": "stopping", "not_ready": ["stopping"]})
    readiness = getattr(state, "readiness", None)
    if readiness is None:
        readiness = state.readiness = readiness_for(hub_of(request))
    checks = await readiness.outcome()
    failing = [name for name, answer in checks.items() if answer != OK]
    if failing:
        return _json(503, {"status": "not ready", "not_ready": failing, "checks": checks})
    return _json(200, {"status": "ready", "checks": checks})


ROUTES = [Route("/readyz", readyz, methods=["GET"])]
