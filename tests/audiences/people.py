"""A project of people in a CSV file, with audiences over them (helpers for the tests)."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

FIELDS = ["person_id", "email", "ltv", "country"]


def person(i: int, **changes) -> dict:
    row = {
        "person_id": f"P{i:04d}",
        "email": f"p{i}@example.com",
        "ltv": str(i * 10),
        "country": "FR" if i % 3 else "DE",
    }
    return row | changes


def write_people(root: Path, rows: list[dict]) -> None:
    with (root / "data" / "people.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def write_project(root: Path, url: str, key: str, audiences: str, *, state: str = "") -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    head = textwrap.dedent(
        f"""
        {state}
        destinations:
          braze: {{url: {url}, api_key: {key}, max_concurrency: 4, retry_base_seconds: 0.05, max_attempts: 3}}
        sources:
          crm: {{type: csv, path: data/people.csv}}
        models:
          people:
            sql: select * from crm
            primary_key: person_id
            columns:
              person_id: {{type: string, required: true}}
              email: {{type: string}}
              ltv: {{type: integer}}
              country: {{type: string}}
        audiences:
        """
    )
    (root / "headwater.yml").write_text(head + textwrap.indent(textwrap.dedent(audiences), "  "))
    return root
