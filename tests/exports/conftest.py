"""The Currents tests' shared helpers (``currents_harness``) import by name, as the gateway
harness does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from headwater.state.currents_claims import dispose_claims
from headwater.state.db import open_state

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    """A state store on each kind of database, its Currents claims closed afterwards."""
    url = (
        f"sqlite:///{tmp_path / 'state.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    engine = open_state(url)
    yield engine
    dispose_claims(engine)
    engine.dispose()
