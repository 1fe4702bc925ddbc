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


def test_a_damaged_library_is_reported_and_the_doctor_exits_non_zero(tmp_path, monkeypatch, capsys):
    import app.doctor as doctor

    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(tmp_path / "none.toml"))
    monkeypatch.setattr(doctor, "gpu_summary", lambda: "not asked")
    assert doctor.library_health(tmp_path) == [("Library", "ok"), ("Chats", "ok")]
    (tmp_path / "library.sqlite3").write_bytes(b"not a database, " * 512)
    (tmp_path / "chats.sqlite3").write_bytes(b"\x00garbage" * 512)
    library, chats = doctor.library_health(tmp_path)
    assert library[1].startswith("DAMAGED: the documents table and keyword index")
    assert chats[1].startswith("DAMAGED: the chats")
    assert doctor.run_doctor(tmp_path) != 0
    assert "confidant repair" in capsys.readouterr().out
