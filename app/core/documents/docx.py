"""Word documents (.docx) through python-docx: paragraphs and table cells in reading order.

Word has no fixed pages, so the whole text is one Page with number None. Paragraphs in Word's
heading styles (Title, Heading 1-9) become the page's headings, so chunks start at them as they do
at a PDF's bookmarks.
"""

from __future__ import annotations

import itertools
import os
import zipfile
from collections.abc import Iterator

from app.core.documents._io import corrupt, guarded, open_binary, quiet, quoted
from app.core.documents.base import EmptyDocument, Heading, Page
from app.core.documents.outline import section_paths

_WHAT = "Word document"
_FIX = "Open it in Word, save it again as .docx, and add it again."
MAX_XML_BYTES = 256 * 1024 * 1024  # the unpacked document.xml; more is a zip bomb, not a letter

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_P, _TBL, _TR, _TC = f"{_W}p", f"{_W}tbl", f"{_W}tr", f"{_W}tc"


def _paragraph_text(p) -> str:
    from docx.text.paragraph import Paragraph

    return Paragraph(p, None).text


def _heading_level(p, part) -> int | None:
    """0 for Title, N for Heading N (Word's built-in names, whatever the UI language), else
    None."""
    if part is None or p.pPr is None or p.pPr.pStyle is None:  # table cells: text only
        return None
    from docx.text.paragraph import Paragraph

    try:
        name = (Paragraph(p, part).style.name or "").strip().lower()
    except (AttributeError, KeyError, ValueError):  # a style the file names but lacks
        return None
    if name == "title":
        return 0
    if name.startswith("heading ") and name[8:].isdigit():
        return int(name[8:])
    return None


def _headings(blocks: list[tuple[str, int | None]]) -> tuple[str, tuple[Heading, ...]]:
    """The text (non-empty blocks, one per line) and where its headings start."""
    lines = [(text, level) for text, level in blocks if text.strip()]
    # Where each line starts once joined with newlines (one start more than lines: the end).
    starts = itertools.accumulate((len(text) + 1 for text, _ in lines), initial=0)
    pairs = zip(starts, lines, strict=False)
    titled = [(at, level, text) for at, (text, level) in pairs if level is not None]
    paths = section_paths((level, text) for _, level, text in titled)
    headings = tuple(Heading(at, path) for (at, _, _), path in zip(titled, paths, strict=True))
    return "\n".join(text for text, _ in lines), headings


def _blocks(parent, part=None) -> Iterator[tuple[str, int | None]]:
    """(text, heading level or None) of paragraphs, and of tables row by row (cells joined by
    ' | '), in order."""
    stack = [iter(parent)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
            continue
        tag = child.tag
        if tag == _P:
            yield _paragraph_text(child), _heading_level(child, part)
        elif tag == _TBL:
            for tr in child.iter(_TR):
                if tr.getparent() is not child:
                    continue  # rows of nested tables come with their cell
                cells = []
                for tc in tr.iterchildren(_TC):
                    text = " ".join(t for t, _ in _blocks(tc) if t.strip())
                    if text:
                        cells.append(text)
                if cells:
                    yield " | ".join(cells), None
        elif isinstance(tag, str):  # content controls, inserted text, custom XML...
            stack.append(iter(child))


@guarded(_WHAT, _FIX)
def read_docx(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Yield the document's text as a single Page(None, text)."""
    import docx

    f, _size = open_binary(path)
    with f:
        try:
            with zipfile.ZipFile(f) as zf:
                info = zf.getinfo("word/document.xml")
            if info.file_size > MAX_XML_BYTES:
                raise corrupt(
                    path, _WHAT, "It is far too large to be an ordinary letter or report."
                )
            f.seek(0)
            with quiet():
                document = docx.Document(f)
                text, headings = _headings(list(_blocks(document.element.body, document.part)))
        except (zipfile.BadZipFile, KeyError) as exc:
            raise corrupt(path, _WHAT, _FIX) from exc
    if not text.strip():
        raise EmptyDocument(
            f"{quoted(path)} has no text in it, so there is nothing to read. "
            "If it holds only pictures or scans, save it as PDF and run OCR on it first."
        )
    yield Page(None, text, headings)
