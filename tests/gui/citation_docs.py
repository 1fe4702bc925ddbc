"""Documents for the citation tests: a long PDF with one cited passage deep inside it.

The passage and its supporting sentence are taken from the page as the library extracts it
(app.core.documents.read_pages), as a real citation's text would be: with its line breaks and its
word hyphenated across a line end.
"""

from __future__ import annotations

from pathlib import Path

from tests.pdfmaker import make_pdf

PAGES = 600
WANTED = 450  # 1-based page the citation points at

CITED_PAGE = (
    "Chapter 12 Reading data files\n"
    "The read.table function reads a file in table format and creates a data\n"
    "frame from it, with cases corresponding to lines and variables to fields in\n"
    "the file. The argu-\n"
    "ment header says whether the file contains the names of the variables as its\n"
    "first line. If missing, the value is determined from the file format: header is\n"
    "set to TRUE if and only if the first row contains one fewer field than columns.\n"
    "\n"
    "Unrelated closing remarks about gnuplot terminals follow on this page."
)
PASSAGE_START = "The read.table function"
PASSAGE_END = "fewer field than columns."
SUPPORT_START = "The argu"
SUPPORT_END = "first line."
PASSAGE_LINES = 6


def filler(i: int) -> str:
    return f"Section {i}\nThis is filler page {i} of the reference manual.\nNothing cited here."


def big_pdf(
    folder: Path, blank_fillers: bool = False, pages: int = PAGES, wanted: int = WANTED
) -> Path:
    """`pages` pages; page `wanted` holds the cited passage. With `blank_fillers` every other page
    has no text at all (only a grey box low on the page), so any text seen where the passage is
    marked can only be the cited page's."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = [
        CITED_PAGE if i == wanted else ("" if blank_fillers else filler(i))
        for i in range(1, pages + 1)
    ]
    return make_pdf(folder / "refman.pdf", texts)


def extracted(path: Path, page: int = WANTED) -> str:
    from app.core.documents import read_pages

    for p in read_pages(str(path)):
        if p.number == page:
            return p.text
    raise AssertionError(f"page {page} not extracted")


def citation(path: Path, page: int = WANTED, n: int = 1) -> dict:
    """A source dict as the window hands it to the viewer: the passage as extracted, its
    offsets in the page's text, and its supporting sentence."""
    text = extracted(path, page)
    start = text.index(PASSAGE_START)
    end = text.index(PASSAGE_END) + len(PASSAGE_END)
    passage = text[start:end]
    s = passage.index(SUPPORT_START)
    support = passage[s : passage.index(SUPPORT_END) + len(SUPPORT_END)]
    return {
        "n": n,
        "path": str(path),
        "page": page,
        "text": passage,
        "start": start,
        "end": end,
        "score": 0.8,
        "support": [support],
    }
