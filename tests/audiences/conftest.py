"""A sandbox on a real port for the audience tests."""

from __future__ import annotations

import pytest

from headwater.sandbox.testing import run_sandbox


@pytest.fixture
def sandbox():
    with run_sandbox() as running:
        yield running


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request):
    from headwater.engines import open_engine

    url = "duckdb:///:memory:" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    opened = open_engine(url)
    yield opened
    opened.close()
