"""Markdown (.md, .markdown): the text a reader sees, without the markup, and its headings.

markdown-it-py (CommonMark, with tables) parses the file. Emphasis markers, backticks and link
syntax go, links and images become their text, reference definitions, footnote markers and HTML
comments are dropped; code blocks are kept verbatim without their fences, list items keep a
"-" or their number, table rows read "cell | cell". `#` and underlined headings become the
page's headings, so chunks start at them as they do at a PDF's bookmarks.

The file is decoded like a text file and parsed a piece at a time (cut at a blank line outside
code), so memory stays bounded whatever its size; its text is handed out as pages of about
64 KB, cut between blocks, as plain text is.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from app.core.documents._io import guarded, quiet, quoted, read_head
from app.core.documents.base import EmptyDocument, Heading, Page
from app.core.documents.text import (
    BLOCK_BYTES,
    PIECE_CHARS,
    _NulWatch,
    nul_run_error,
    open_text,
)

SOURCE_CHARS = 256 * 1024  # Markdown parsed at a time
# A fence left open would keep the rest of the file in one piece: past this, cut at a line.
MAX_SOURCE_CHARS = 4 * SOURCE_CHARS

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_BR = re.compile(r"<br\s*/?>", re.I)
# A static site's metadata block ("---", "title: ...", "---") opening the file: kept as text.
_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n(?=[A-Za-z_][\w-]*:)"  # "---", then a "key:" line
    r"((?:(?!---|\.\.\.)[^\n]*\n){0,200}?)"  # up to 200 lines
    r"(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)"  # "---" or "..." to close it
)
_FOOTNOTE_REF = re.compile(r"\[\^[^\]\s]{1,60}\]")
_FOOTNOTE_DEF = re.compile(r"\[\^[^\]\s]{1,60}\]:[ \t]*")


@dataclass
class _Part:
    """A block of the page's text: a paragraph, a list item, a code block, a table row."""

    text: str
    joined: bool = False  # follows the previous block on the next line, not after a blank one
    level: int = 0  # a heading's level, else 0


def _parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _inline(token) -> str:
    """An inline token's text as read: links and images by their text, code by its content,
    inline HTML dropped (a <br> is a line break), footnote markers left out, and a footnote's
    label before its text ("[^2]: Unless ...")."""
    out: list[str] = []
    children = token.children or []
    footnote = False
    for i, child in enumerate(children):
        kind = child.type
        if kind == "text":
            if not footnote:
                out.append(child.content)
        elif kind == "code_inline":
            out.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "image":
            out.append("".join(c.content for c in child.children or ()) or child.content)
        elif kind == "html_inline":
            if _BR.fullmatch(child.content.strip()):
                out.append("\n")
        elif kind == "link_open":
            # [^1] whose definition is a link: a footnote marker, not text
            after = children[i + 1] if i + 1 < len(children) else None
            footnote = after is not None and after.type == "text" and after.content[:1] == "^"
        elif kind == "link_close":
            footnote = False
    text = "".join(out)
    label = _FOOTNOTE_DEF.match(text)
    if label:
        text = text[label.end() :]
    return _FOOTNOTE_REF.sub("", text)


def _html_text(markup: str) -> str:
    from app.core.documents.html import html_to_page

    return html_to_page(markup)[0]


def render(source: str, parser=None) -> list[_Part]:
    """The blocks of a piece of Markdown, in reading order."""
    parser = parser or _parser()
    tokens = parser.parse(source)
    parts: list[_Part] = []
    lists: list[bool] = []  # per open list: ordered?
    prefix = ""  # a list item's marker, for its first block
    row: list[str] = []
    first_row = opened = False

    def add(text: str, joined: bool = False, level: int = 0) -> None:
        nonlocal prefix, opened
        if prefix:
            text, prefix = prefix + text, ""
        if opened:  # a list's first item starts a new block, a nested list's its own line
            joined, opened = len(lists) > 1, False
        if text.strip():
            parts.append(_Part(text, joined, level))

    i = 0
    while i < len(tokens):
        token = tokens[i]
        kind = token.type
        if kind == "heading_open":
            prefix = ""  # a title is a title, even as a list's item
            add(" ".join(_inline(tokens[i + 1]).split()), level=int(token.tag[1]))
            i += 3
            continue
        if kind == "paragraph_open":
            add(_inline(tokens[i + 1]), joined=bool(lists) and token.hidden)
            i += 3
            continue
        if kind in ("fence", "code_block"):
            add(token.content.rstrip("\n"), joined=bool(lists))
        elif kind == "html_block":
            add(_html_text(token.content), joined=bool(lists))
        elif kind in ("bullet_list_open", "ordered_list_open"):
            lists.append(kind == "ordered_list_open")
            opened = True
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            marker = f"{token.info}{token.markup}" if lists and lists[-1] else "-"
            prefix = "  " * (len(lists) - 1) + marker + " "
        elif kind == "list_item_close":
            prefix = ""
        elif kind == "table_open":
            first_row = True
        elif kind == "tr_open":
            row = []
        elif kind in ("th_open", "td_open"):
            row.append(" ".join(_inline(tokens[i + 1]).split()))
            i += 3
            continue
        elif kind == "tr_close":
            add(" | ".join(row).strip(), joined=not first_row)
            first_row = False
        i += 1
    return parts


class _Pages:
    """Blocks -> pages of at most PIECE_CHARS (but for a block longer than that on its own),
    with each heading's place and section path."""

    def __init__(self) -> None:
        self.sections: list[tuple[int, str]] = []
        self.text: list[str] = []
        self.size = 0
        self.headings: list[Heading] = []

    def add(self, part: _Part) -> Page | None:
        done = None
        if self.text and self.size + 2 + len(part.text) > PIECE_CHARS:
            done = self.flush()
        if self.text:
            sep = "\n" if part.joined else "\n\n"
            self.text.append(sep)
            self.size += len(sep)
        if part.level:
            while self.sections and self.sections[-1][0] >= part.level:
                self.sections.pop()
            self.sections.append((part.level, part.text))
            self.headings.append(Heading(self.size, tuple(t for _, t in self.sections)))
        self.text.append(part.text)
        self.size += len(part.text)
        return done

    def flush(self) -> Page | None:
        page = None
        if self.text:
            page = Page(None, "".join(self.text), tuple(self.headings), embed_path=True)
        self.text, self.size, self.headings = [], 0, []
        return page


def _sources(chunks: Iterator[str]) -> Iterator[str]:
    """Markdown in pieces of about SOURCE_CHARS, cut at a blank line outside fenced code."""
    buf = ""
    for chunk in chunks:
        buf += chunk
        while len(buf) >= SOURCE_CHARS:
            cut = _cut(buf)
            if cut is None:
                break
            yield buf[:cut]
            buf = buf[cut:]
    if buf:
        yield buf


def _cut(buf: str) -> int | None:
    """Where to end a piece: at the blank line outside fenced code nearest before SOURCE_CHARS
    (or the first one after it); None to read on; a line break when a fence never closes."""
    fence = ""
    before = None
    at = 0
    for line in buf.splitlines(keepends=True):
        at += len(line)
        m = _FENCE.match(line)
        if fence:
            mark = m.group(1) if m else ""
            if mark[:1] == fence[:1] and len(mark) >= len(fence) and not line[m.end() :].strip():
                fence = ""
        elif m:
            fence = m.group(1)
        elif not line.strip() and line.endswith("\n"):
            if at > SOURCE_CHARS:
                return before if before and before >= SOURCE_CHARS // 2 else at
            before = at
    if before and before >= SOURCE_CHARS // 2:
        return before
    if len(buf) > MAX_SOURCE_CHARS:
        i = buf.rfind("\n", 0, SOURCE_CHARS)
        return i + 1 if i > 0 else SOURCE_CHARS
    return None


def _decoded(f, path, encoding: str, sample: bytes) -> Iterator[str]:
    """The file's text as it is read; a long run of zero bytes anywhere (binary data behind a
    text start, a file padded to gigabytes) stops it at once (text.py's check)."""
    watch = _NulWatch(f.tell(), sample)
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    yield decoder.decode(sample)
    while True:
        block = read_head(f, path, BLOCK_BYTES)
        if (at := watch.check(block)) is not None:
            raise nul_run_error(path, at)
        yield decoder.decode(block, final=not block)
        if not block:
            return


@guarded(
    "Markdown file", "Open it in a text editor, save it again as UTF-8 text, and add it again."
)
def read_markdown(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Yield the file's text without markup, in pages of about 64 KB with their headings."""
    f, encoding, head = open_text(path)
    with f:
        parser = _parser()
        pages = _Pages()
        yielded = False
        for n, source in enumerate(_sources(_decoded(f, path, encoding, head))):
            source = source.replace("\x00", "\ufffd")
            front = _FRONT_MATTER.match(source) if n == 0 else None
            if front:  # its "---" would make its last line a heading
                source = source[front.end() :]
            try:
                with quiet():
                    parts = render(source, parser)
            except (RecursionError, ValueError, IndexError, TypeError):
                parts = [_Part(source)]  # markup the parser trips over: read it as written
            if front and front.group(1).strip():
                parts.insert(0, _Part(front.group(1).strip("\n")))
            for part in parts:
                page = pages.add(part)
                if page is not None:
                    yielded = True
                    yield page
        page = pages.flush()
        if page is not None:
            yielded = True
            yield page
    if not yielded:
        raise EmptyDocument(
            f"{quoted(path)} has no text to read (only markup or blank space). "
            "Check that it was saved correctly."
        )
