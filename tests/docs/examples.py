"""The fenced code blocks of the documentation, with the marker that says how each is tested.

A marker is an HTML comment on the line right before the fence (readers never see it):
``<!-- test: sandbox -->``, ``<!-- test: no-run (why) -->``, ``<!-- test: whole-file -->``,
``<!-- test: not-project (what it is) -->``. docs/development.md explains them to authors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted([ROOT / "README.md", *DOCS.rglob("*.md")])

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+)(?P<lang>[\w.+-]*)\s*$")
MARKER = re.compile(r"^\s*<!-- test: (?P<mode>[\w.-]+)(?: \((?P<why>[^)]*)\))? -->\s*$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    mode: str | None
    text: str
    why: str | None = None  # the marker's reason, in parentheses

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != fence:
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        found.append(
            Block(
                page=page,
                line=i + 1,
                lang=opening["lang"].lower(),
                mode=marker["mode"] if marker else None,
                text="\n".join(body) + "\n",
                why=marker["why"] if marker else None,
            )
        )
        i = j + 1
    return found


def all_blocks(lang: str) -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.lang == lang]
