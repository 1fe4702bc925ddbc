"""Names that are not valid UTF-8, faults in the reader thread, and files that change while they
are read: through the real CLI and Ingestor, the real tiny embedder and a real Chroma in tmp.

Linux names are bytes; Python hands a name that is not UTF-8 over as a str holding its
undecodable bytes as lone surrogates (os.fsdecode(b"caf\\xe9.txt") == "caf\\udce9.txt"). Such a
file is a perfectly readable file: it is added like any other, and shown as caf\\xe9.txt.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import app.core.ingest as ingest_module
from app.cli import main
from app.core.cancel import CancelToken
from app.core.events import FileDone, FileStarted, IngestFinished
from app.core.extraction import PageReader
from app.core.ingest import READ_ATTEMPTS, IngestOptions, Ingestor
from app.core.ingest_queue import IngestQueue
from app.core.library import Library
from tests.pdfmaker import make_pdf

pytestmark = pytest.mark.slow

CAFE = b"caf\xe9 menu.txt"  # Latin-1 bytes: not valid UTF-8
RESUME = b"r\xe9sum\xe9.pdf"
BAD_DIR = b"dossier \xff"


def fs(folder: Path, name: bytes) -> Path:
    """The path of `name` (raw bytes) inside `folder`, as Python names it."""
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), name)))


@pytest.fixture
def tiny_embedder(shared_embedder_only, embedder):
    """The CLI's Services reuse the session's embedder (no language model needed)."""
    return embedder


@pytest.fixture
def folder(tmp_path) -> Path:
    """Good files around files and a folder whose names are not UTF-8, in walk order:
    'a first.txt', 'caf\\xe9 menu.txt', 'dossier \\xff/inner.txt', 'r\\xe9sum\\xe9.pdf',
    'zebra.txt' (the bad names sort in the middle, so files come after them)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a first.txt").write_text("Apples grow in the orchard behind the old mill.\n")
    fs(docs, CAFE).write_text("The cafe serves quince tart every Thursday.\n")
    fs(docs, BAD_DIR).mkdir()
    (fs(docs, BAD_DIR) / "inner.txt").write_text("The boathouse key is kept in the red tin.\n")
    make_pdf(fs(docs, RESUME), ["Résumé of Ada: a lighthouse keeper.", "She speaks Basque."])
    (docs / "zebra.txt").write_text("Zebras sleep standing up on the savanna.\n")
    return docs


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def no_surrogates(text: str) -> bool:
    """Whether `text` can be written to a UTF-8 terminal or file as it is."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def queue_left(home: Path) -> list:
    assert not (home / "ingest-queue.json.tmp").exists()
    return json.loads((home / "ingest-queue.json").read_text(encoding="utf-8"))


def test_a_folder_with_names_that_are_not_utf8_is_added_whole(home, tiny_embedder, folder, capsys):
    code, out, err = run(capsys, "ingest", str(folder))
    assert code == 0, err
    assert "5 added" in err and "failed" not in err
    for shown in ("caf\\xe9 menu.txt", "r\\xe9sum\\xe9.pdf", "zebra.txt", "inner.txt"):
        assert f"added: {shown}:" in err, shown
    assert no_surrogates(err)
    assert queue_left(home) == []
    # The next run finds nothing left over and every file unchanged.
    code, _, err = run(capsys, "ingest")
    assert code == 0 and "nothing left to add" in err
    code, _, err = run(capsys, "ingest", str(folder))
    assert code == 0 and "5 unchanged" in err, err
    # Listed, searchable, shown with the undecodable bytes escaped, on a UTF-8 stdout.
    code, out, _ = run(capsys, "list")
    assert code == 0 and no_surrogates(out)
    assert f"{folder}/caf\\xe9 menu.txt" in out and f"{folder}/dossier \\xff/inner.txt" in out
    code, out, _ = run(capsys, "search", "quince tart", "--json")
    best = json.loads(out)["hits"][0]
    assert best["path"] == f"{folder}/caf\\xe9 menu.txt" and "quince" in best["text"]
    code, out, _ = run(capsys, "search", "lighthouse keeper")
    assert out.startswith("[1] r\\xe9sum\\xe9.pdf, page 1") and no_surrogates(out)
    # Removing it by the name the shell passes (the bytes) finds it.
    code, _, err = run(capsys, "remove", str(fs(folder, CAFE)))
    assert code == 0, err
    code, out, _ = run(capsys, "list", "--json")
    assert {Path(d["path"]).name for d in json.loads(out)["documents"]} == {
        "a first.txt",
        "inner.txt",
        "r\\xe9sum\\xe9.pdf",
        "zebra.txt",
    }


def test_json_output_stays_valid_utf8_json(home, tiny_embedder, folder, capsys):
    code, out, err = run(capsys, "ingest", str(folder), "--json")
    assert code == 0, err
    out.encode("utf-8")  # strict: no lone surrogates reach stdout
    files = json.loads(out)["files"]
    assert {f["path"]: f["status"] for f in files} == {
        f"{folder}/a first.txt": "added",
        f"{folder}/caf\\xe9 menu.txt": "added",
        f"{folder}/dossier \\xff/inner.txt": "added",
        f"{folder}/r\\xe9sum\\xe9.pdf": "added",
        f"{folder}/zebra.txt": "added",
    }
    assert queue_left(home) == []


def test_a_file_named_explicitly_is_added_and_the_queue_is_left_clean(
    home, tiny_embedder, folder, capsys
):
    code, out, err = run(capsys, "ingest", str(fs(folder, CAFE)), "--json")
    assert code == 0, err
    assert json.loads(out)["files"] == [
        {"path": f"{folder}/caf\\xe9 menu.txt", "status": "added", "chunks": 1, "error": None}
    ]
    assert queue_left(home) == []


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_the_real_entry_point_takes_such_names_as_bytes_from_the_shell(home, tmp_path, locale):
    """argv and stdout as a shell gives them: the name arrives as bytes; stdout is checked as
    bytes, strictly UTF-8."""
    docs = tmp_path / "docs"
    docs.mkdir()
    fs(docs, CAFE).write_text("The cafe serves quince tart every Thursday.\n")
    (docs / "zebra.txt").write_text("Zebras sleep standing up on the savanna.\n")
    env = {**os.environ, "CONFIDANT_HOME": str(home), "LC_ALL": locale}
    env.pop("PYTHONIOENCODING", None)
    argv = [sys.executable, "-m", "app", "ingest", "--json", os.fsencode(docs / "zebra.txt")]
    proc = subprocess.run(
        [*argv, os.fsencode(fs(docs, CAFE))], env=env, capture_output=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    files = json.loads(proc.stdout.decode("utf-8"))["files"]
    assert [(f["path"], f["status"]) for f in files] == [
        (f"{docs}/zebra.txt", "added"),
        (f"{docs}/caf\\xe9 menu.txt", "added"),
    ]
    assert b"Traceback" not in proc.stderr
    assert queue_left(home) == []


def test_the_queue_keeps_such_a_name_across_a_restart(tmp_path):
    name = str(fs(tmp_path, CAFE))
    IngestQueue(tmp_path).add([name, "/plain/ümlaut.txt"])
    assert not (tmp_path / "ingest-queue.json.tmp").exists()
    (tmp_path / "ingest-queue.json").read_text(encoding="utf-8")  # valid UTF-8 on disk
    again = IngestQueue(tmp_path)
    assert again.paths() == [name, "/plain/ümlaut.txt"]
    again.discard([name])
    assert IngestQueue(tmp_path).paths() == ["/plain/ümlaut.txt"]


@pytest.fixture
def sniff_fails_for_cafe(monkeypatch):
    """An unexpected exception in the reader thread, for the file with the Latin-1 name only."""
    real = ingest_module.sniff

    def sniff(path):
        if os.fsencode(path).endswith(CAFE):
            raise RuntimeError("injected fault")
        return real(path)

    monkeypatch.setattr(ingest_module, "sniff", sniff)


def test_a_fault_in_the_reader_thread_fails_that_file_only(
    home, tiny_embedder, folder, capsys, sniff_fails_for_cafe
):
    code, _, err = run(capsys, "ingest", str(folder))
    assert code == 1
    assert "4 added, 1 failed" in err
    assert (
        f"failed: {folder}/caf\\xe9 menu.txt: 'caf\\xe9 menu.txt' could not be read: "
        "unexpected RuntimeError." in err
    )
    assert "Traceback" not in err and no_surrogates(err)
    assert queue_left(home) == []
    code, out, _ = run(capsys, "list", "--json")
    docs = {Path(d["path"]).name: d for d in json.loads(out)["documents"]}
    assert docs["caf\\xe9 menu.txt"]["status"] == "failed"
    assert {n for n, d in docs.items() if d["status"] == "ready"} == {
        "a first.txt",
        "inner.txt",
        "r\\xe9sum\\xe9.pdf",
        "zebra.txt",
    }


# ------------------------------------------------------------------ files changed while read
ORIGINAL = "The harbour ferry leaves at nine every morning from pier four.\n"
INTERIM = "Quarterly zeppelin maintenance is scheduled for the hangar.\n" * 40
OLD = 1_000_000_000 * 10**9  # an mtime long past: any write during the test changes it


def ingest(library, embedder, paths):
    events = list(Ingestor(library, embedder, IngestOptions()).run(paths, CancelToken()))
    assert isinstance(events[-1], IngestFinished)
    return {Path(e.path).name: (e.status, e.error) for e in events if isinstance(e, FileDone)}, [
        e for e in events if isinstance(e, FileStarted)
    ]


def texts(library: Library, name: str) -> str:
    doc = next(d for d in library.documents() if Path(d.path).name == name)
    rows = library._db.execute(
        "SELECT text FROM chunks WHERE doc_id=? AND version=? ORDER BY idx", (doc.id, doc.hash)
    )
    return " ".join(r[0] for r in rows)


@pytest.fixture
def lib(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    library = Library(home)
    yield library
    library.close()


def test_a_text_file_rewritten_and_restored_while_read_is_read_again(
    lib, embedder, tmp_path, monkeypatch
):
    notes = tmp_path / "ferry.txt"
    notes.write_text(ORIGINAL)
    os.utime(notes, ns=(OLD, OLD))
    other = tmp_path / "other.txt"
    other.write_text("An unrelated note about the bakery.\n")
    real = ingest_module.read_pages
    reads = []

    def rewriting_reader(path):
        reads.append(Path(path).name)
        if Path(path).name == "ferry.txt" and reads.count("ferry.txt") == 1:
            notes.write_text(INTERIM)  # saved over while we read it...
            yield from real(path)
            notes.write_text(ORIGINAL)  # ...and restored: same bytes, same hash as before
        else:
            yield from real(path)

    monkeypatch.setattr(ingest_module, "read_pages", rewriting_reader)
    got, started = ingest(lib, embedder, [notes, other])
    assert got == {"ferry.txt": ("added", None), "other.txt": ("added", None)}
    assert reads.count("ferry.txt") == 2
    assert [Path(s.path).name for s in started] == ["ferry.txt", "other.txt"]
    assert "ferry leaves at nine" in texts(lib, "ferry.txt")
    assert "zeppelin" not in texts(lib, "ferry.txt")
    assert lib.keyword_search("zeppelin", 5) == []
    assert lib.verify() == []
    monkeypatch.setattr(ingest_module, "read_pages", real)
    assert ingest(lib, embedder, [notes])[0] == {"ferry.txt": ("unchanged", None)}


def test_a_pdf_rewritten_while_the_worker_reads_it_ends_with_its_final_text(
    lib, embedder, tmp_path, monkeypatch
):
    report = tmp_path / "report.pdf"
    make_pdf(report, ["The ferry leaves from pier four.", "Tickets cost nine euros."])
    final = report.read_bytes()
    make_pdf(tmp_path / "interim.pdf", ["Zeppelin hangar schedule."] * 6)
    interim = (tmp_path / "interim.pdf").read_bytes()
    os.utime(report, ns=(OLD, OLD))
    real = PageReader.chunks
    reads = []

    def rewriting_chunks(self, path):
        reads.append(path)
        if len(reads) == 1:
            report.write_bytes(interim)  # the worker opens this one
            yield from real(self, path)
            report.write_bytes(final)
        else:
            yield from real(self, path)

    monkeypatch.setattr(PageReader, "chunks", rewriting_chunks)
    got, _ = ingest(lib, embedder, [report])
    assert got == {"report.pdf": ("added", None)} and len(reads) == 2
    doc = lib.documents()[0]
    assert (doc.pages, doc.chunks) == (2, 2)
    assert "nine euros" in texts(lib, "report.pdf") and "Zeppelin" not in texts(lib, "report.pdf")
    assert lib.verify() == []


def test_a_file_that_keeps_changing_fails_and_its_last_good_version_stays(
    lib, embedder, tmp_path, monkeypatch
):
    notes = tmp_path / "ferry.txt"
    notes.write_text(ORIGINAL)
    assert ingest(lib, embedder, [notes])[0] == {"ferry.txt": ("added", None)}
    before = texts(lib, "ferry.txt")
    notes.write_text(ORIGINAL + "Extra sailing on Sundays.\n")
    real = ingest_module.read_pages
    reads = []

    def ever_changing(path):
        reads.append(path)
        yield from real(path)
        notes.write_text(f"{INTERIM} draft {len(reads)}\n")  # someone keeps saving it

    monkeypatch.setattr(ingest_module, "read_pages", ever_changing)
    got, _ = ingest(lib, embedder, [notes])
    assert got == {
        "ferry.txt": (
            "failed",
            "'ferry.txt' kept changing while it was read; add it again when it is saved.",
        )
    }
    assert len(reads) == READ_ATTEMPTS
    assert texts(lib, "ferry.txt") == before and lib.keyword_search("zeppelin", 5) == []
    assert lib.documents()[0].status == "ready" and lib.verify() == []


def test_messages_about_such_files_are_valid_text_naming_them(lib, embedder, tmp_path):
    docs = tmp_path / "odd"
    docs.mkdir()
    fs(docs, b"caf\xe9 data.txt").write_bytes(bytes(range(256)) * 64)
    fs(docs, b"\xffnotes.docx").write_bytes(b"This was never a Word file.\n" * 20)
    (docs / "fine.txt").write_text("A plain note about the orchard.\n")
    got, _ = ingest(lib, embedder, [docs])
    assert got["fine.txt"] == ("added", None)
    assert got["caf\udce9 data.txt"][0] == "skipped"
    assert "'caf\\xe9 data.txt'" in got["caf\udce9 data.txt"][1]
    assert got["\udcffnotes.docx"][0] == "failed"
    assert "'\\xffnotes.docx'" in got["\udcffnotes.docx"][1]
    assert all(no_surrogates(error or "") for _, error in got.values())
    stored = {Path(d.path).name: d for d in lib.documents()}
    assert set(stored) == {"fine.txt", "caf\udce9 data.txt", "\udcffnotes.docx"}
    assert stored["\udcffnotes.docx"].status == "failed"
    assert "'\\xffnotes.docx'" in stored["\udcffnotes.docx"].error


def test_a_file_that_looks_damaged_because_it_was_being_saved_is_read_again(
    lib, embedder, tmp_path, monkeypatch
):
    from app.core.documents import CorruptDocument

    notes = tmp_path / "ferry.txt"
    notes.write_text(ORIGINAL)
    os.utime(notes, ns=(OLD, OLD))
    real = ingest_module.read_pages
    reads = []

    def half_saved(path):
        reads.append(path)
        if len(reads) == 1:  # the reader met the file mid-save, then the save finished
            notes.write_text(ORIGINAL + "Extra sailing on Sundays.\n")
            raise CorruptDocument("'ferry.txt' is damaged.")
        yield from real(path)

    monkeypatch.setattr(ingest_module, "read_pages", half_saved)
    got, _ = ingest(lib, embedder, [notes])
    assert got == {"ferry.txt": ("added", None)} and len(reads) == 2
    assert "Sundays" in texts(lib, "ferry.txt") and lib.verify() == []
