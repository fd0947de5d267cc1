"""Run a sandbox on a real port for tests, benchmarks and the demo.

with run_sandbox(key="secret") as sandbox:
    client = BrazeClient(sandbox.url, sandbox.key)
    sandbox.set_faults(rate_429=0.3)
    sandbox.users()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from headwater.braze.limits import BatchPolicy
from headwater.sandbox.app import Sandbox, create_app
from headwater.sandbox.settings import SandboxSettings
from headwater.testing import RunningServer, serve_in_thread

DEFAULT_TEST_KEY = "sandbox-test-key"


@dataclass
class RunningSandbox:
    server: RunningServer
    sandbox: Sandbox
    key: str

    @property
    def url(self) -> str:
        return self.server.url

    def _control(self, method: str, path: str, json: object = None) -> object:
        response = httpx.request(method, f"{self.url}/_sandbox{path}", json=json, timeout=30)
        response.raise_for_status()
        return response.json()

    def users(self, limit: int = 10000) -> list[dict]:
        return self._control("GET", f"/users?limit={limit}")["users"]

    def user(self, identifier: str) -> dict | None:
        response = httpx.get(f"{self.url}/_sandbox/users/{identifier}", timeout=30)
        return None if response.status_code == 404 else response.json()

    def counters(self) -> dict:
        return self._control("GET", "/counters")

    def set_faults(self, **faults: float) -> dict:
        return self._control("POST", "/faults", faults)

    def set_rate_limit(self, bucket: str, limit: int, window_seconds: float) -> dict:
        return self._control(
            "POST", "/rate_limits", {bucket: {"limit": limit, "window_seconds": window_seconds}}
        )

    def reset(self) -> None:
        self._control("POST", "/reset")

    def seed(self, **body: object) -> dict:
        return self._control("POST", "/seed", body)

    def define_segment(self, name: str, filter: dict | None = None, **extra: object) -> dict:
        """A segment of the users matching ``filter`` (none: every user)."""
        return self._control("POST", "/segments", {"name": name, "filter": filter, **extra})


@contextlib.contextmanager
def run_sandbox(
    db: str = ":memory:",
    key: str = DEFAULT_TEST_KEY,
    *,
    fresh: bool = False,
    batch_policy: BatchPolicy | str = BatchPolicy.COMBINED,
    clock: Callable[[], float] | None = None,
    **settings: object,
) -> Iterator[RunningSandbox]:
    """A sandbox on a free port with one all-permission ``key``; ``fresh`` deletes ``db``;
    ``clock`` replaces the time its rate windows and export lag run on."""
    if fresh and db != ":memory:":
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(db + suffix)
    config = SandboxSettings(db=db, key=key, batch_policy=BatchPolicy(batch_policy), **settings)
    sandbox = Sandbox.open(config, clock)
    with serve_in_thread(create_app(sandbox=sandbox)) as server:
        yield RunningSandbox(server, sandbox, key)
