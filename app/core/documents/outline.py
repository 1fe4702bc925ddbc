"""A document's outline (its bookmarks, its headings) -> the sections that begin on each page.

Chunking cuts at these places (chunking.py), so no passage mixes the end of one section with the
start of the next. `section_paths` turns (level, title) entries into each section's path;
`sections_by_page` groups a PDF outline's paths by page, and `locate` finds where each title
starts in the page's text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from app.core.documents.base import Heading

MAX_TITLE_CHARS = 200  # a "title" longer than this is body text someone bookmarked


def section_paths(entries: Iterable[tuple[int, str]]) -> Iterator[tuple[str, ...]]:
    """The path of each (level, title) entry, in order: the titles from the outermost section
    down to it (untitled ones left out). An entry nests under the last one of a lower level."""
    stack: list[tuple[int, str]] = []
    for level, title in entries:
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, " ".join(title.split())[:MAX_TITLE_CHARS]))
        yield tuple(t for _, t in stack if t)


def sections_by_page(
    entries: Iterable[tuple[int, str, int | None]],
) -> dict[int, list[tuple[str, ...]]]:
    """{page index: [section path, ...]} from outline entries (level from 0, title, page index
    or None) in outline order."""
    entries = list(entries)
    by_page: dict[int, list[tuple[str, ...]]] = {}
    paths = section_paths((level, title) for level, title, _ in entries)
    for (_level, title, index), path in zip(entries, paths, strict=True):
        if title.strip() and index is not None and index >= 0:
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
