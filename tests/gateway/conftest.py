"""Fixtures for the gateway tests: the fake Braze receiver and a SQLite state store."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway_harness import fake_braze, sqlite_url  # noqa: E402


@pytest.fixture
def receiver():
    with fake_braze() as (fake, url):
        yield fake, url


@pytest.fixture
def sqlite_state(tmp_path) -> str:
    return sqlite_url(tmp_path)
