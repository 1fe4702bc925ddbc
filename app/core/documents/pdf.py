"""PDF files through pypdf, page by page (1-based page numbers)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from app.core.documents._io import corrupt, guarded, open_binary, quiet, quoted
from app.core.documents.base import EmptyDocument, EncryptedDocument, NoTextLayer, Page

# pypdf logs every oddity of a damaged file; those are not the user's business.
logging.getLogger("pypdf").setLevel(logging.CRITICAL)

_WHAT = "PDF"
_FIX = "Open it in a PDF reader, save or print it to a new PDF, and add that copy instead."


def _encrypted(path: str | os.PathLike[str]) -> EncryptedDocument:
    return EncryptedDocument(
        f"{quoted(path)} is password-protected. Remove the password (e.g. print it to a new PDF) "
        "and add it again."
    )


def _page_text(page) -> str:
    with quiet():
        try:
            return page.extract_text(extraction_mode="plain") or ""
        except TypeError:  # an older pypdf without extraction modes
            return page.extract_text() or ""


@guarded(_WHAT, _FIX)
def read_pdf(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Yield Page(number, text) for every page that has text; skip pages that fail to parse."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    f, _size = open_binary(path)
    with f:
        try:
            with quiet():
                reader = PdfReader(f, strict=False)
                if reader.is_encrypted:
                    try:
                        if not reader.decrypt(""):
                            raise _encrypted(path)
                    except (DependencyError, NotImplementedError, FileNotDecryptedError) as exc:
                        raise _encrypted(path) from exc
                count = len(reader.pages)
        except (EncryptedDocument, MemoryError):
            raise
        except NotImplementedError as exc:
            if "encrypt" in str(exc).lower():  # a security handler other than a password
                raise _encrypted(path) from exc
            raise corrupt(path, _WHAT, _FIX) from exc
        except Exception as exc:  # PdfReadError, ValueError, KeyError, RecursionError...
            raise corrupt(path, _WHAT, _FIX) from exc
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
                    text = _page_text(reader.pages[index])
            except MemoryError:
                raise
            except Exception:  # one bad page must not lose the rest of the document
                failed += 1
                continue
            if text.strip():
                with_text += 1
                yield Page(index + 1, text)
        if with_text == 0:
            if failed == count:
                raise corrupt(path, _WHAT, _FIX)
            raise NoTextLayer(
                f"{quoted(path)} has no text layer (it looks scanned): there is no text to read. "
                "Run it through OCR first."
            )
