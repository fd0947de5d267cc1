"""A sandbox on a real port for the audience tests."""

from __future__ import annotations

import pytest

from headwater.sandbox.testing import run_sandbox


@pytest.fixture
def sandbox():
    with run_sandbox() as running:
        yield running
