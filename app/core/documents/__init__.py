"""Format loaders: turn a file into Page objects, whatever its name claims it is.

`sniff(path)` decides the format from the file's content (the suffix is only a hint) and
`read_pages(path)` hands the file to the right loader. Both raise nothing but DocumentError
subclasses, whose messages are plain sentences for the person who added the file.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from app.core.documents._io import corrupt, guarded, open_binary, quoted, read_head
from app.core.documents.base import (
    CorruptDocument,
    DocumentError,
    EmptyDocument,
    EncryptedDocument,
    NoTextLayer,
    Page,
    UnreadableFile,
    UnsupportedFormat,
)
from app.core.documents.docx import read_docx
from app.core.documents.html import read_html
from app.core.documents.markdown import read_markdown
from app.core.documents.pdf import read_pdf
from app.core.documents.text import (
    SAMPLE_BYTES,
    binary_error,
    detect_encoding,
    nul_run_beyond,
    nul_run_error,
    read_text,
)

__all__ = [
    "LOADERS",
    "SUPPORTED_SUFFIXES",
    "CorruptDocument",
    "DocumentError",
    "EmptyDocument",
    "EncryptedDocument",
    "NoTextLayer",
    "Page",
    "UnreadableFile",
    "UnsupportedFormat",
    "read_docx",
    "read_html",
    "read_markdown",
    "read_pages",
    "read_pdf",
    "read_text",
    "sniff",
]

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".text", ".csv", ".log", ".rst"} | MARKDOWN_SUFFIXES)
HTML_SUFFIXES = frozenset({".htm", ".html", ".xhtml"})
SUPPORTED_SUFFIXES = frozenset({".pdf", ".docx"} | TEXT_SUFFIXES | HTML_SUFFIXES)

LOADERS = {"pdf": read_pdf, "docx": read_docx, "html": read_html, "text": read_text}

_SUPPORTED_LIST = "PDF, Word (.docx), web pages (.html) and plain text (.txt, .md)"
_HTML_START = re.compile(r"<(?:!doctype\s+html|html|head|body)[\s>/]", re.I)
# Magic numbers of common formats we cannot read, to say what the file is.
_KNOWN_BINARY = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", None),  # too short to trust on its own; see below
    (b"MZ", None),
    (b"\x7fELF", "a program"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office file (.doc, .xls or .ppt)"),
    (b"{\\rtf", "a Rich Text (.rtf) file"),
    (b"\x1f\x8b", "a compressed (.gz) archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"ID3", "an audio file"),
    (b"OggS", "an audio or video file"),
    (b"fLaC", "an audio file"),
)


def _unsupported(path: str | os.PathLike[str], what: str) -> UnsupportedFormat:
    return UnsupportedFormat(
        f"{quoted(path)} is {what}, which cannot be read. Only {_SUPPORTED_LIST} files can be "
        "added; save it in one of those formats first."
    )


def _is_text(head: bytes, size: int) -> bool:
    return detect_encoding(head, len(head) >= size or len(head) < SAMPLE_BYTES) is not None


# What every PDF has besides its "%PDF-" header: numbered objects, and an end-of-file marker.
_PDF_OBJECT = re.compile(rb"\d+\s+\d+\s+obj\b")
_PDF_TAIL = (b"%%EOF", b"startxref")


def _pdf_or_text(f, head: bytes, size: int, suffix: str) -> bool:
    """Whether a file with "%PDF" in its first KB is a PDF. In a file named as text (.txt, .md,
    .csv, .html...) that reads as text and has none of a PDF's structure, "%PDF" is only words
    (notes about PDFs): it is text. Any other name, or a trace of PDF structure, and it is a
    PDF, read (or refused as damaged) by the PDF reader."""
    if suffix not in TEXT_SUFFIXES | HTML_SUFFIXES or not _is_text(head, size):
        return True
    if _PDF_OBJECT.search(head):
        return True
    f.seek(max(0, size - 2048))
    tail = f.read(2048)
    f.seek(len(head))
    return any(marker in tail for marker in _PDF_TAIL)


def _sniff_zip(path: str | os.PathLike[str], f, head: bytes, size: int) -> str | None:
    """The ZIP-based format of the file, or None for text that merely starts like a ZIP (a
    file named as text whose bytes are text and that no ZIP reader can open)."""
    suffix = Path(path).suffix.lower()
    try:
        f.seek(0)
        with zipfile.ZipFile(f) as zf:
            names = set(zf.namelist())
    except Exception as exc:  # BadZipFile, or a damaged directory that trips zipfile itself
        if suffix in TEXT_SUFFIXES | HTML_SUFFIXES and _is_text(head, size):
            f.seek(len(head))
            return None
        if suffix == ".docx":
            raise corrupt(
                path, "Word document", "Open it in Word, save it again as .docx, and add it again."
            ) from exc
        raise _unsupported(path, "a damaged ZIP archive") from exc
    if "word/document.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        raise _unsupported(path, "an Excel workbook")
    if "ppt/presentation.xml" in names:
        raise _unsupported(path, "a PowerPoint presentation")
    if "content.xml" in names:
        raise _unsupported(path, "an OpenDocument file")
    if suffix == ".docx":
        raise CorruptDocument(
            f"{quoted(path)} is named .docx but is not a Word document (it is some other ZIP "
            "archive). Open it in Word, save it again as .docx, and add it again."
        )
    raise _unsupported(path, "a ZIP archive")


def sniff(path: str | os.PathLike[str]) -> str:
    """Return "pdf", "docx", "html" or "text" for the file, judged by its content.

    Raises UnsupportedFormat, EmptyDocument, UnreadableFile or CorruptDocument.
    """
    try:
        return _sniff(path)
    except DocumentError:
        raise
    except MemoryError as exc:
        raise UnreadableFile(
            f"{quoted(path)} could not be checked: out of memory. "
            "Close other programs and try again."
        ) from exc
    except Exception as exc:
        raise corrupt(
            path, "document", "Open it in its own program, save it again, and add that copy."
        ) from exc


def _sniff(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix.lower()
    f, size = open_binary(path)
    with f:
        head = read_head(f, path, SAMPLE_BYTES)
        if b"%PDF" in head[:1024] and _pdf_or_text(f, head, size, suffix):
            return "pdf"
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            kind = _sniff_zip(path, f, head, size)
            if kind is not None:
                return kind
        return _sniff_text(path, f, head, size, suffix)


def _sniff_text(path: str | os.PathLike[str], f, head: bytes, size: int, suffix: str) -> str:
    if suffix == ".docx":
        raise CorruptDocument(
            f"{quoted(path)} is named .docx but is not a Word document. It may be damaged or an "
            "old .doc file that was renamed: open it in Word, save it as .docx, and add it again."
        )
    if suffix == ".pdf":
        raise CorruptDocument(
            f"{quoted(path)} is named .pdf but is not a PDF (it may be an error page saved by "
            "mistake, or damaged). Download or export it again and add the new copy."
        )
    for magic, what in _KNOWN_BINARY:
        if what and head.startswith(magic):
            raise _unsupported(path, what)
    if head[:4] in (b"RIFF",) or head[4:8] == b"ftyp":
        raise _unsupported(path, "an image, audio or video file")
    found = detect_encoding(head, len(head) >= size or len(head) < SAMPLE_BYTES)
    if found is None:
        if head.startswith(b"MZ"):
            raise _unsupported(path, "a program")
        raise binary_error(path)
    at = nul_run_beyond(f, path, size, len(head))
    if at is not None:
        raise nul_run_error(path, at)
    encoding, skip = found
    start = head[skip : skip + 8192].decode(encoding, errors="replace").lstrip()
    if suffix in HTML_SUFFIXES:
        return "html"
    if start.startswith("<") and _HTML_START.search(start[:4096]):
        return "html"
    return "text"


# Readers whose output changed since libraries were first made: their revision is part of a
# document's version (ingest.version_of), so files read by the old reader are read again when
# they are next added or re-indexed, while every other file stays as it is.
# docx-1: read as a stream without python-docx, hidden text (w:vanish) left out.
READER_REVISIONS = {"html": "html-2", "markdown": "markdown-1", "docx": "docx-1"}


def reader_revision(path: str | os.PathLike[str], kind: str) -> str:
    """The revision of the reader that reads `path` (sniffed as `kind`); "" for the first."""
    if kind == "text" and Path(path).suffix.lower() in MARKDOWN_SUFFIXES:
        kind = "markdown"
    return READER_REVISIONS.get(kind, "")


@guarded("document", "Open it in its own program, save it again, and add that copy.")
def read_pages(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Sniff the file, then yield its pages from the matching loader (lazily). Text in a file
    named .md or .markdown is read as Markdown."""
    kind = sniff(path)
    if kind == "text" and Path(path).suffix.lower() in MARKDOWN_SUFFIXES:
        yield from read_markdown(path)
        return
    yield from LOADERS[kind](path)
