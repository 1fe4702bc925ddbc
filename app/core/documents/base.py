"""What every format loader returns and the typed errors it may raise.

A loader turns a path into an iterator of Page objects, lazily, so a large file is never held
whole in memory. Anything that goes wrong is raised as a DocumentError subclass whose message is a
plain sentence for an office worker (what is wrong, what to do); no other exception may escape.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    """A section that begins on a page: where its title starts in the page's text, and its
    title with those of the sections around it, outermost first."""

    offset: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class Page:
    """The text of one page. `number` is 1-based, or None for formats without pages.
    `headings` are the sections that begin on it, in reading order (a PDF's outline, Word's
    heading styles)."""

    number: int | None
    text: str
    headings: tuple[Heading, ...] = ()
    # Embed each chunk after its section path (chunking.py). Web pages and Markdown: their
    # sections are short and generically titled ("Options", "Synopsis"), and cut at every
    # heading they lost their subject (the office set's hit@5 fell without the path). PDF
    # outlines measured worse with it (bench/NOTES.md, the structure-aware readers).
    embed_path: bool = False
    of: int = 0  # pages in the whole document, when the reader knows (PDF): for progress


class DocumentError(Exception):
    """A file could not be read. `status` tells the library whether it was skipped or failed."""

    status = "failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFormat(DocumentError):
    status = "skipped"


class EmptyDocument(DocumentError):
    """Zero bytes, or nothing but whitespace."""

    status = "skipped"


class NoTextLayer(DocumentError):
    """A PDF made of images (a scan): there is no text to read."""

    status = "skipped"


class EncryptedDocument(DocumentError):
    pass


class CorruptDocument(DocumentError):
    pass


class UnreadableFile(DocumentError):
    """The operating system would not let us read it (permissions, vanished, a device...)."""
