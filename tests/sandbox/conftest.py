"""One real sandbox per test module (uvicorn on a socket), wiped before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from headwater.sandbox.testing import RunningSandbox, run_sandbox

NO_FAULTS = {"rate_429": 0, "rate_5xx": 0, "latency_ms": 0, "drop_rate": 0, "export_lag_seconds": 0,
             "export_duplicate_share": 0, "export_truncated_share": 0}  # fmt: skip


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[RunningSandbox]:
    with run_sandbox(seed=7) as running:
        yield running


@pytest.fixture
def sandbox(sandbox_server: RunningSandbox) -> RunningSandbox:
    sandbox_server.reset()
    sandbox_server.set_faults(**NO_FAULTS)
    return sandbox_server


@pytest.fixture
def api(sandbox: RunningSandbox) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sandbox.key}"}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=30) as client:
        yield client
