"""`confidant doctor`'s PDF line: which engine reads PDFs, and a plain warning when it is pypdf."""

from __future__ import annotations

import sys

from app.doctor import pdf_reader_summary


def test_pdfium_is_named_when_it_loads():
    assert pdf_reader_summary().startswith("PDFium ")


def test_a_missing_pdfium_is_reported_not_raised(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypdfium2", None)  # import now raises ImportError
    line = pdf_reader_summary()
    assert line.startswith("pypdf only") and "Reinstall Confidant" in line
