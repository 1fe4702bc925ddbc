"""PDF files, page by page (1-based page numbers): PDFium first, pypdf as the second reader.

PDFium (through pypdfium2) is the engine of Chrome and of the window's own viewer (QtPdf), so
the text a citation quotes is the text the viewer searches for on the page. Its C++ reads a
page an order of magnitude faster than pypdf's pure Python (bench/NOTES.md), which matters
most once embeddings run on a GPU.
pypdf reads what PDFium refuses to open (it repairs some damaged cross-reference tables PDFium
gives up on), and everything where pypdfium2 is not installed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

from app.core.documents._io import corrupt, guarded, open_binary, quiet, quoted
from app.core.documents.base import EmptyDocument, EncryptedDocument, NoTextLayer, Page
from app.core.documents.outline import locate, sections_by_page

# pypdf logs every oddity of a damaged file; those are not the user's business.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)

_WHAT = "PDF"
_FIX = "Open it in a PDF reader, save or print it to a new PDF, and add that copy instead."

# FPDF_GetLastError codes that mean "protected", not "damaged".
_PDFIUM_PASSWORD, _PDFIUM_SECURITY = 4, 5
_MAX_OUTLINE_DEPTH = 16


def _encrypted(path: str | os.PathLike[str]) -> EncryptedDocument:
    return EncryptedDocument(
        f"{quoted(path)} is password-protected. Remove the password (e.g. print it to a new PDF) "
        "and add it again."
    )


@guarded(_WHAT, _FIX)
def read_pdf(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Yield Page(number, text) for every page that has text; skip pages that fail to parse."""
    f, _size = open_binary(path)  # plain messages for missing, unreadable and empty files
    with f:
        document = _open_with_pdfium(path)
        if document is None:
            reader = _open_with_pypdf(f, path)
            yield from _pages(
                path,
                len(reader.pages),
                lambda index: reader.pages[index].extract_text(extraction_mode="plain") or "",
                _outline(lambda: _pypdf_outline(reader)),
            )
            return
        try:
            yield from _pages(
                path,
                len(document),
                lambda index: _pdfium_text(document, index),
                _outline(lambda: _pdfium_outline(document)),
            )
        finally:
            document.close()


def _outline(entries: Callable[[], Iterator[tuple[int, str, int | None]]]):
    """The sections beginning on each page; a damaged outline costs only the headings."""
    try:
        with quiet():
            return sections_by_page(entries())
    except MemoryError:
        raise
    except Exception:
        return {}


def _pages(
    path, count: int, text_of: Callable[[int], str], outline: dict[int, list[tuple[str, ...]]]
) -> Iterator[Page]:
    if count == 0:
        raise EmptyDocument(
            f"{quoted(path)} has no pages, so there is nothing to read. "
            "Check that it was saved or downloaded completely."
        )
    failed = 0
    with_text = 0
    for index in range(count):
        try:
            with quiet():
                text = text_of(index)
        except MemoryError:
            raise
        except Exception:  # one bad page must not lose the rest of the document
            failed += 1
            continue
        if text.strip():
            with_text += 1
            yield Page(index + 1, text, locate(text, outline.get(index, ())), of=count)
    if with_text == 0:
        if failed == count:
            raise corrupt(path, _WHAT, _FIX)
        raise NoTextLayer(
            f"{quoted(path)} has no text layer (it looks scanned): there is no text to read. "
            "Run it through OCR first."
        )


# ------------------------------------------------------------------ PDFium
def _open_with_pdfium(path: str | os.PathLike[str]):
    """A pypdfium2 PdfDocument, or None where pypdfium2 is missing or PDFium cannot parse the
    file (pypdf gets a try). A password-protected file is refused here and now."""
    try:
        import pypdfium2
    except ImportError:
        return None
    try:
        return pypdfium2.PdfDocument(os.fspath(path))
    except pypdfium2.PdfiumError as exc:
        if exc.err_code in (_PDFIUM_PASSWORD, _PDFIUM_SECURITY):
            raise _encrypted(path) from exc
        return None


def _pdfium_outline(document) -> Iterator[tuple[int, str, int | None]]:
    for item in document.get_toc(max_depth=_MAX_OUTLINE_DEPTH):
        dest = item.get_dest()
        yield item.level, item.get_title() or "", dest.get_index() if dest is not None else None


def _pdfium_text(document, index: int) -> str:
    page = document[index]
    try:
        textpage = page.get_textpage()
        try:
            return _clean(textpage.get_text_range())
        finally:
            textpage.close()
    finally:
        page.close()


def _clean(text: str) -> str:
    # PDFium ends lines with CRLF, and where a word is hyphenated across a line break it drops
    # the break and leaves U+FFFE for the hyphen ("re\ufffeusable"): joined, the word is whole.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufffe", "")


# ------------------------------------------------------------------ pypdf
def _open_with_pypdf(f, path):
    """An open pypdf PdfReader (decrypted when its password is empty)."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        with quiet():
            reader = PdfReader(f, strict=False)
            if reader.is_encrypted:
                try:
                    if not reader.decrypt(""):
                        raise _encrypted(path)
                except (DependencyError, NotImplementedError, FileNotDecryptedError) as exc:
                    raise _encrypted(path) from exc
            len(reader.pages)  # parses the page tree: a damaged one fails here, not midway
    except (EncryptedDocument, MemoryError):
        raise
    except NotImplementedError as exc:
        if "encrypt" in str(exc).lower():  # a security handler other than a password
            raise _encrypted(path) from exc
        raise corrupt(path, _WHAT, _FIX) from exc
    except Exception as exc:  # PdfReadError, ValueError, KeyError, RecursionError...
        raise corrupt(path, _WHAT, _FIX) from exc
    return reader


def _pypdf_outline(reader) -> Iterator[tuple[int, str, int | None]]:
    def walk(items, level: int):
        for item in items:
            if isinstance(item, list):  # the children of the entry before it
                if level < _MAX_OUTLINE_DEPTH:
                    yield from walk(item, level + 1)
            else:
                yield level, str(item.title or ""), reader.get_destination_page_number(item)

    yield from walk(reader.outline, 0)
