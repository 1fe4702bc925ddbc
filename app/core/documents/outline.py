"""A document's outline (its bookmarks) -> the sections that begin on each page, and where.

Chunking cuts at these places (chunking.py), so no passage mixes the end of one section with the
start of the next. Readers turn their outline into (level, title, page index) entries;
`sections_by_page` gives each page its section paths, and `locate` finds where each title
starts in the page's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.core.documents.base import Heading

MAX_TITLE_CHARS = 200  # a "title" longer than this is body text someone bookmarked


def sections_by_page(
    entries: Iterable[tuple[int, str, int | None]],
) -> dict[int, list[tuple[str, ...]]]:
    """{page index: [section path, ...]} from outline entries (level from 0, title, page index
    or None) in outline order. A path holds the titles from the outermost section down."""
    by_page: dict[int, list[tuple[str, ...]]] = {}
    stack: list[str] = []
    for level, title, index in entries:
        title = " ".join(title.split())[:MAX_TITLE_CHARS]
        del stack[max(level, 0) :]
        stack.append(title)
        path = tuple(t for t in stack if t)
        if title and index is not None and index >= 0:
            by_page.setdefault(index, []).append(path)
    return by_page


def locate(text: str, paths: Iterable[tuple[str, ...]]) -> tuple[Heading, ...]:
    """Where each section's title starts in a page's text, in reading order. A title that
    cannot be found (drawn differently from its bookmark) is placed where the previous one was:
    the outline's order is the reading order."""
    headings = []
    at = 0
    for path in paths:
        pattern = _pattern(path[-1])
        found = pattern.search(text, at) or pattern.search(text)
        if found:
            at = found.start()
        headings.append(Heading(at, path))
    return tuple(sorted(headings, key=lambda h: h.offset))


def _pattern(title: str) -> re.Pattern[str]:
    # Words in order, any whitespace (a line break) between them, any case.
    return re.compile(r"\s+".join(re.escape(w) for w in title.split()), re.IGNORECASE)
