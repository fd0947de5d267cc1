"""One serve per SQLite state file: a second is refused with the first one's pid; the
lock goes with its holder, and PostgreSQL or in-memory stores need none."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import create_engine

from headwater.errors import ConfigError
from headwater.state.serve_lock import ServeLock


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    first = ServeLock.for_engine(engine).acquire()
    with pytest.raises(ConfigError) as refused:
        ServeLock.for_engine(engine).acquire()
    message = str(refused.value)
    assert f"pid {os.getpid()}" in message and str(tmp_path / "state.db") in message
    first.release()
    ServeLock.for_engine(engine).acquire().release()


def test_stores_that_need_no_lock():
    postgres = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")  # not opened
    assert ServeLock.for_engine(postgres) is None
    assert ServeLock.for_engine(create_engine("sqlite://")) is None
    assert ServeLock.for_engine(create_engine("sqlite:///:memory:")) is None
