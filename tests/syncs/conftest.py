"""The engine a sync's diff and snapshot run in: DuckDB in memory, and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from headwater.engines import Engine, open_engine


@pytest.fixture(params=["duckdb", "postgres"])
def engine(request) -> Iterator[Engine]:
    url = "duckdb:///:memory:" if request.param == "duckdb" else request.getfixturevalue("pg_url")
    opened = open_engine(url)
    yield opened
    opened.close()
