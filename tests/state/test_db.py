"""A state store made by an older version is refused with the tables and columns named."""

from __future__ import annotations

import sqlite3

import pytest

from headwater.errors import ConfigError
from headwater.state import outbox as _outbox_tables  # noqa: F401  (declares the tables)
from headwater.state.db import open_state


def test_a_store_missing_columns_is_refused_by_name(tmp_path):
    path = tmp_path / "state.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, stream TEXT, payload BLOB)")
    old.close()
    with pytest.raises(ConfigError) as caught:
        open_state(f"sqlite:///{path}")
    message = str(caught.value)
    assert "older Headwater" in message and "outbox (missing" in message
    assert "objects" in message and "destination" in message


def test_a_current_store_opens_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_state(url).dispose()
    open_state(url).dispose()
