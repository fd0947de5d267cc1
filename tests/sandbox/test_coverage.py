"""docs/sandbox-coverage.md is generated from the endpoint table and the sandbox's routes."""

from __future__ import annotations

from pathlib import Path

from headwater.braze.endpoints import ENDPOINTS
from headwater.sandbox.coverage import render, served_routes

PAGE = Path(__file__).resolve().parents[2] / "docs" / "sandbox-coverage.md"


def test_coverage_page_is_up_to_date():
    assert PAGE.read_text(encoding="utf-8") == render(), (
        "regenerate: python -m headwater.sandbox.coverage --write docs/sandbox-coverage.md"
    )


def test_endpoint_table_marks_exactly_the_served_endpoints_as_implemented():
    served = served_routes()
    for endpoint in ENDPOINTS.values():
        assert endpoint.implemented == ((endpoint.method, endpoint.path) in served), endpoint.name
