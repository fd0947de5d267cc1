"""MkDocs hook: a page line ``<!-- reference: NAME -->`` becomes the reference rendered
from the code (``headwater.docs_reference``), so the pages cannot drift from it."""

import re

from headwater.docs_reference import RENDERERS

MARKER = re.compile(r"^<!-- reference: ([\w.-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown, page, config, files):
    def render(match):
        name = match.group(1)
        if name not in RENDERERS:
            raise ValueError(f"{page.file.src_path}: unknown reference {name!r}")
        return RENDERERS[name]()

    return MARKER.sub(render, markdown)
