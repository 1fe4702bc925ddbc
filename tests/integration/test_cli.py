"""The CLI end to end: real PDFs/DOCX/HTML/TXT, the real tiny models, a real Chroma in tmp."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.cli import main
from tests.integration.corpus import build_corpus
from tests.pdfmaker import make_pdf

pytestmark = pytest.mark.slow


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys, *argv):
    code, out, err = run(capsys, *argv, "--json")
    return code, json.loads(out), err


@pytest.fixture
def library(home, tmp_path, shared_models, capsys):
    files = build_corpus(tmp_path / "docs")
    code, result, _ = run_json(capsys, "ingest", str(tmp_path / "docs"))
    assert code == 0, result
    return files, result


def test_ingest_reports_every_file_added(library):
    _files, result = library
    by_name = {os.path.basename(f["path"]): f for f in result["files"]}
    assert set(by_name) == {"handbook.pdf", "leave policy.docx", "visitor notes.html", "wifi.txt"}
    assert all(
        f["status"] == "added" and f["chunks"] >= 1 and f["error"] is None for f in by_name.values()
    )
    assert by_name["handbook.pdf"]["chunks"] >= 4  # one per page at least
    assert isinstance(result["seconds"], float)


@pytest.mark.parametrize(
    "query, name, page",
    [
        ("where do we gather when the fire alarm goes off", "handbook.pdf", 2),  # paraphrase
        ("deadline for submitting expense reports", "handbook.pdf", 3),
        ("astrolabe", "handbook.pdf", 4),
        ("KX-4471-PELICAN", "wifi.txt", None),  # a rare exact term
        ("how many vacation days do employees get", "leave policy.docx", None),
    ],
)
def test_search_puts_the_right_page_first(library, capsys, query, name, page):
    code, result, _ = run_json(capsys, "search", query, "-k", "3")
    assert code == 0
    best = result["hits"][0]
    assert (os.path.basename(best["path"]), best["page"]) == (name, page)
    assert 0 < best["score"] <= 1


def test_html_scripts_are_not_indexed(library, capsys):
    _, result, _ = run_json(capsys, "search", "zzscriptzz tracking", "-k", "5")
    assert all("zzscriptzz" not in h["text"] for h in result["hits"])


def test_ask_streams_an_answer_that_cites_the_right_page(library, capsys):
    code, result, _ = run_json(capsys, "ask", "Where is the emergency assembly point?")
    assert code == 0
    first = result["sources"][0]
    assert (os.path.basename(first["path"]), first["page"], first["n"]) == ("handbook.pdf", 2, 1)
    assert "north car park" in first["text"]
    assert result["answer"].strip()
    stats = result["stats"]
    assert stats["prompt_tokens"] > 50 and stats["completion_tokens"] > 0
    assert stats["ttft_ms"] > 0 and stats["model"]
    code, out, _ = run(capsys, "ask", "Where is the emergency assembly point?")
    assert code == 0 and "Sources:" in out and "handbook.pdf, page 2" in out


def test_a_question_with_no_answer_in_the_library_says_so(library, capsys):
    code, result, _ = run_json(
        capsys, "ask", "What is the boiling point of liquid nitrogen in kelvin?"
    )
    assert code == 0
    assert result["answer"] == "I could not find this in your documents."
    assert result["sources"] == []  # nothing is cited...
    assert result["answerable"] is False
    assert result["closest"]  # ...the closest passages are shown for what they are
    code, out, _ = run(capsys, "ask", "What is the capital of France?")
    assert code == 0 and "Sources:" not in out and "do not match the question" in out


def test_search_says_whether_the_passages_answer_the_question(library, capsys):
    _, on, _ = run_json(capsys, "search", "Where is the emergency assembly point?")
    _, off, _ = run_json(capsys, "search", "Who won the football World Cup in 2018?")
    assert on["answerable"] is True and off["answerable"] is False
    assert off["hits"]  # search still lists what is closest
    assert off["relevance"]["closeness"] < on["relevance"]["closeness"]


def test_reingesting_does_no_work_and_a_changed_file_is_replaced(library, capsys, tmp_path):
    files, _ = library
    code, result, _ = run_json(capsys, "ingest", str(tmp_path / "docs"))
    assert code == 0 and {f["status"] for f in result["files"]} == {"unchanged"}
    files["wifi"].write_text("The guest network password changed to ZEBRA-9090-QUAY.\n")
    code, result, _ = run_json(capsys, "ingest", str(files["wifi"]))
    assert [f["status"] for f in result["files"]] == ["replaced"]
    _, hits, _ = run_json(capsys, "search", "KX-4471-PELICAN")
    assert all("PELICAN" not in h["text"] for h in hits["hits"])
    _, hits, _ = run_json(capsys, "search", "ZEBRA-9090-QUAY")
    assert "ZEBRA-9090-QUAY" in hits["hits"][0]["text"]


def test_remove_and_list(library, capsys):
    files, _ = library
    assert run(capsys, "remove", str(files["handbook"]))[0] == 0
    _, listing, _ = run_json(capsys, "list")
    names = sorted(os.path.basename(d["path"]) for d in listing["documents"])
    assert names == ["leave policy.docx", "visitor notes.html", "wifi.txt"]
    assert all(d["status"] == "ready" for d in listing["documents"])
    _, hits, _ = run_json(capsys, "search", "astrolabe")
    assert all("handbook" not in h["path"] for h in hits["hits"])
    code, _, err = run(capsys, "remove", str(files["handbook"]))
    assert code == 1 and "not in the library" in err


def test_bad_inputs_get_specific_messages_and_leave_the_library_alone(library, capsys, tmp_path):
    from pypdf import PdfWriter

    _, before, _ = run_json(capsys, "list")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (bad / "not a word file.docx").write_text("hello")
    make_pdf(bad / "scan.pdf", ["", ""])
    good = make_pdf(tmp_path / "plain.pdf", ["secret plans"])
    writer = PdfWriter(clone_from=str(good))
    writer.encrypt("hunter2")
    writer.write(bad / "locked.pdf")
    (bad / "cut.pdf").write_bytes((tmp_path / "docs" / "handbook.pdf").read_bytes()[:300])
    code, result, _ = run_json(capsys, "ingest", str(bad), str(tmp_path / "missing.pdf"))
    assert code == 1
    got = {os.path.basename(f["path"]): (f["status"], f["error"]) for f in result["files"]}
    assert got["missing.pdf"][0] == "failed" and "does not exist" in got["missing.pdf"][1]
    assert got["empty.txt"][0] == "skipped" and "empty" in got["empty.txt"][1]
    assert got["binary.txt"][0] == "skipped" and "binary" in got["binary.txt"][1]
    assert got["not a word file.docx"][0] == "failed"
    assert got["scan.pdf"][0] == "skipped" and "scanned" in got["scan.pdf"][1]
    assert got["locked.pdf"][0] == "failed" and "password" in got["locked.pdf"][1]
    assert got["cut.pdf"][0] == "failed"
    for _status, error in got.values():
        assert error and "Traceback" not in error
    _, after, _ = run_json(capsys, "list")
    ready_before = {d["path"]: d["chunks"] for d in before["documents"]}
    ready_after = {d["path"]: d["chunks"] for d in after["documents"] if d["status"] == "ready"}
    assert ready_after == ready_before


def test_empty_question_and_bad_model_paths(home, capsys, tmp_path, shared_models):
    code, _, err = run(capsys, "ask", "   ")
    assert code == 2 and "question is empty" in err
    code, _, err = run(capsys, "ask", "hello?", "--model", str(tmp_path / "none.gguf"))
    assert code == 2 and "does not exist" in err
    notgguf = tmp_path / "model.gguf"
    notgguf.write_text("not a model")
    code, _, err = run(capsys, "ask", "hello?", "--model", str(notgguf))
    assert code == 2 and "not a GGUF" in err
    code, _, err = run(capsys, "search", "")
    assert code == 2 and "empty" in err


def test_the_real_entry_point_and_a_second_instance(home, tmp_path):
    from app.config import data_dir
    from app.core.instance import InstanceLock

    env = {**os.environ, "CONFIDANT_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "app", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"documents": []}
    with InstanceLock(data_dir(), "window"):
        proc = subprocess.run(
            [sys.executable, "-m", "app", "list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 2
    assert "already using the library" in proc.stderr and "Traceback" not in proc.stderr


def test_a_missing_embedding_model_is_a_message_not_a_traceback(home, tmp_path, capsys):
    home.mkdir(parents=True)
    empty = tmp_path / "no model here"
    empty.mkdir()
    (home / "settings.toml").write_text(f"embedder_path = {str(empty)!r}\n", encoding="utf-8")
    (tmp_path / "note.txt").write_text("The boiler is serviced in May.", encoding="utf-8")
    code, out, err = run(capsys, "ingest", str(tmp_path / "note.txt"))
    assert code == 2, (out, err)
    assert "No embedding model at" in err and str(empty) in err


def test_a_removal_cut_short_by_a_crash_is_finished_by_the_next_command(library, capsys, home):
    from app.core.library import Library

    files, _ = library
    lib = Library(home)
    lib._db.execute(
        "UPDATE documents SET status='removing' WHERE path=?", (str(files["wifi"].resolve()),)
    )
    lib.close()  # the process died here, mid-removal
    _, listing, _ = run_json(capsys, "list")
    assert all("wifi" not in d["path"] for d in listing["documents"])
    _, hits, _ = run_json(capsys, "search", "KX-4471-PELICAN")
    assert all("wifi" not in h["path"] for h in hits["hits"])


def test_an_unexpected_error_is_a_message_and_a_file_not_a_traceback(
    library, capsys, home, tmp_path, monkeypatch
):
    """Bugs happen (a stop-14 measurement hit "database is locked"): the user gets words."""
    import sqlite3

    from app.core.ingest import Ingestor

    def locked(self, paths, cancel):
        yield from ()
        raise sqlite3.OperationalError("database is locked")

    extra = tmp_path / "extra.txt"
    extra.write_text("One more note.\n")
    with monkeypatch.context() as patch:
        patch.setattr(Ingestor, "run", locked)
        patch.chdir(tmp_path)
        code, _, err = run(capsys, "ingest", "extra.txt")
    assert code == 1
    assert "confidant: ingest stopped by an unexpected error: database is locked." in err
    assert "Nothing already in the library is lost" in err and "Traceback" not in err
    details = home / "last-error.txt"
    assert f"Details for support: {details}." in err
    assert "sqlite3.OperationalError: database is locked" in details.read_text()
    code, listing, _ = run_json(capsys, "list")
    assert code == 0 and len(listing["documents"]) == 4  # what was there is still there
    # "run the same command again": from any folder, the request is still queued, absolute
    code, _, err = run(capsys, "ingest")
    assert code == 0 and f"picking up '{extra}'" in err and "1 added" in err
    code, result, err = run_json(capsys, "ingest")
    assert code == 0 and result == {"files": [], "seconds": 0.0} and "nothing left" in err
