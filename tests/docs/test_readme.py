"""The README is the short front page: it starts with the two commands a new user runs,
stays short, and its links into the documentation lead somewhere."""

from __future__ import annotations

import re

from tests.docs.examples import ROOT, blocks

README = ROOT / "README.md"


def test_readme_starts_with_the_two_commands():
    first = blocks(README)[0]
    commands = [line.split("#")[0].strip() for line in first.text.splitlines()]
    assert commands == ["make demo", "make test"]
    text = README.read_text(encoding="utf-8")
    before = text[: text.index("```")]
    assert before.strip() == "# Headwater"


def test_readme_is_a_front_page_not_the_manual():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 150


def test_readme_links_lead_to_pages_that_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert len(local) >= 20
    missing = [t for t in local if not (ROOT / t).is_file()]
    assert not missing
