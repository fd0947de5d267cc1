"""Delivery tests share the gateway harness (fake Braze receiver, gateway on a real port)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))

from gateway_harness import fake_braze, sqlite_url  # noqa: E402

CASES = Path(__file__).resolve().parents[1] / "cases" / "extole"


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

    return lambda name: orjson.loads((CASES / f"{name}.json").read_bytes())
