"""`confidant doctor`'s PDF line: which engine reads PDFs, and a plain warning when it is pypdf."""

from __future__ import annotations

import os
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


def test_pyside6_is_found_whichever_wheel_installed_it(monkeypatch):
    import importlib.metadata as md

    import app.doctor as doctor

    def only(installed: dict[str, str]):
        def version(name: str) -> str:
            if name in installed:
                return installed[name]
            raise md.PackageNotFoundError(name)

        monkeypatch.setattr(doctor.md, "version", version)

    only({"PySide6-Essentials": "6.11.3"})  # what Confidant installs
    assert doctor.qt_summary() == "6.11.3 (PySide6-Essentials)"
    only({"PySide6": "6.8.0", "PySide6-Essentials": "6.8.0"})  # the full wheel
    assert doctor.qt_summary() == "6.8.0"
    only({})  # no distribution recorded, the package importable all the same
    assert doctor.qt_summary() == "installed (version unknown)"
    monkeypatch.setattr(doctor.importlib.util, "find_spec", lambda name: None)
    assert doctor.qt_summary().startswith("not installed: the window cannot start")


def test_the_doctor_names_refused_settings_and_runs_on_a_read_only_data_dir(
    tmp_path, monkeypatch, capsys
):
    import app.doctor as doctor
    from app.cli import main

    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.toml").write_text("sources = -3\n")
    monkeypatch.setenv("CONFIDANT_HOME", str(home))
    monkeypatch.setenv("CONFIDANT_MACHINE_SETTINGS", str(tmp_path / "none.toml"))
    monkeypatch.setattr(doctor, "gpu_summary", lambda: "not asked")
    # What a read-only folder answers (root, running the tests, may write anywhere).
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if str(p) == str(home) else real_access(p, mode)
    )
    main(["doctor"])
    out = capsys.readouterr().out
    assert "'sources' must be a whole number from 1 to 20 (it is -3)" in out
    assert "PySide6" in out and "NOT writable" in out
