"""Shared fixtures: real databases and real sockets, never mocks of them."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings

from headwater.testing.services import postgres_url

# No example may fail for being slow: a loaded CI machine runs them at any speed. Every
# test's own @settings inherits this (the profile is hypothesis's default for the run).
settings.register_profile("headwater", deadline=None)
settings.load_profile("headwater")


class ManualClock:
    """Time that moves only when a test says so, for code that takes a ``clock`` (windows,
    leases, backoffs): a test steps past a window instead of sleeping and racing it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards.

    PostgreSQL is required: CI always has it, so a missing server fails loudly here.
    """
    admin = postgres_url()
    name = f"hw_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(admin, autocommit=True)
    except psycopg.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL is required at {admin}: {exc}")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# The gateway harness (a fake Braze receiver, a gateway on a real port) serves the gateway,
# streams, delivery and end-to-end tests alike.
sys.path.insert(0, str(Path(__file__).resolve().parent / "gateway"))
from gateway_harness import fake_braze, sqlite_url  # noqa: E402

EXTOLE_CASES = Path(__file__).resolve().parent / "cases" / "extole"


@pytest.fixture
def receiver():
    with fake_braze() as (fake, url):
        yield fake, url


@pytest.fixture
def sqlite_state(tmp_path) -> str:
    return sqlite_url(tmp_path)


@pytest.fixture
def extole_case():
    import orjson

    return lambda name: orjson.loads((EXTOLE_CASES / f"{name}.json").read_bytes())
