"""More hostile input (issue 22): links out of the chosen folder, folders that cannot be read,
a data folder inside what is added, text that starts like a PDF or a ZIP, zero bytes far into
a text file, an EBCDIC declaration, control characters in names and text. Through the real
walk, sniffing, readers, Ingestor and CLI, the real tiny embedder and a real Chroma in tmp.
Each ends in a message naming the file or folder, and nothing already added is lost."""

from __future__ import annotations

import errno
import os
import time

import pytest

from app.cli import main
from app.core.cancel import CancelToken
from app.core.documents import UnsupportedFormat, read_html, read_pages, read_text, sniff
from app.core.events import FileDone
from app.core.ingest import Ingestor
from app.core.library import Library
from app.core.walk import expand
from tests.pdfmaker import pdf_bytes

pytestmark = pytest.mark.slow


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def tiny_embedder(shared_embedder_only, embedder):
    """The CLI's Services reuse the session's embedder (no language model needed)."""
    return embedder


def ingest(library: Library, embedder, paths) -> dict[str, tuple[str, str | None]]:
    events = list(Ingestor(library, embedder).run([str(p) for p in paths], CancelToken()))
    return {e.path: (e.status, e.error) for e in events if isinstance(e, FileDone)}


# --------------------------------------------------------------------------- the walk
def test_links_out_of_the_chosen_folder_are_not_followed_and_are_named(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not to be indexed\n")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("inside\n")
    (docs / "sub" / "b.txt").write_text("inside too\n")
    (docs / "to-passwd").symlink_to("/etc/passwd")
    (docs / "to-secret.txt").symlink_to(outside / "secret.txt")
    (docs / "to-outside").symlink_to(outside, target_is_directory=True)
    (docs / "to-a.txt").symlink_to(docs / "a.txt")  # inside: fine (and the same file)
    (docs / "to-sub").symlink_to(docs / "sub", target_is_directory=True)
    files, problems = expand([docs])
    assert files == [docs / "a.txt", docs / "sub" / "b.txt"]
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {
        str(docs / "to-passwd"),
        str(docs / "to-secret.txt"),
        str(docs / "to-outside"),
    }
    note = by_path[str(docs / "to-passwd")]
    assert note.status == "skipped"
    assert "'/etc/passwd'" in note.message and "outside the folder 'docs'" in note.message
    assert "not followed" in note.message
    # Named on its own, a file outside any folder is the user's explicit choice.
    assert expand([docs / "to-secret.txt"])[0] == [outside / "secret.txt"]


def test_a_subfolder_that_cannot_be_read_is_named_with_the_reason(tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    (docs / "locked").mkdir(parents=True)
    (docs / "locked" / "x.txt").write_text("x\n")
    (docs / "open.txt").write_text("open\n")
    real_scandir = os.scandir

    def scandir(path="."):  # what a folder without read permission gives (root passes it)
        if os.fspath(path) == str(docs / "locked"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files, problems = expand([docs])
    assert files == [docs / "open.txt"]
    [problem] = problems
    assert problem.path == str(docs / "locked") and problem.status == "failed"
    assert "'" + str(docs / "locked") + "' could not be read (permission denied)" in problem.message
    assert "files in it were not added" in problem.message


def test_a_subfolder_too_deep_for_the_system_is_named(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "top.txt").write_text("top\n")
    fd = os.open(docs, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 251 bytes: past PATH_MAX (4096)
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        leaf = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
        os.write(leaf, b"deep\n")
        os.close(leaf)
    finally:
        os.close(fd)
    files, problems = expand([docs])
    assert files == [docs / "top.txt"]
    [problem] = problems
    assert "its path is longer than the system allows" in problem.message
    assert "Move or rename it to a shorter path" in problem.message


def test_a_data_folder_inside_what_is_added_is_not_indexed(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("The pantry is restocked on Mondays.\n")
    home = docs / "confidant-data"  # e.g. CONFIDANT_HOME inside the documents folder
    home.mkdir()
    library = Library(home)
    try:
        (home / "settings.toml").write_text("sources = 5\n")  # text a walk would pick up
        got = ingest(library, embedder, [docs])
        assert got[str(docs / "notes.txt")][0] == "added"
        assert "is a Confidant data folder" in got[str(home)][1]
        assert {d.path for d in library.documents()} == {str(docs / "notes.txt")}
        # ... also when it is the folder named.
        assert "is a Confidant data folder" in ingest(library, embedder, [home])[str(home)][1]
        assert {d.path for d in library.documents()} == {str(docs / "notes.txt")}
    finally:
        library.close()


# --------------------------------------------------------------------------- zero bytes
def test_text_followed_by_gigabytes_of_zero_bytes_is_refused_without_reading_them(tmp_path):
    path = tmp_path / "image.txt"
    with open(path, "wb") as fh:
        fh.write(b"Ordinary words on ordinary lines.\n" * 2500)  # about 84 KB of text
        fh.truncate(2 * 1024**3)  # then 2 GB of zero bytes (sparse: no disk used)
    started = time.perf_counter()
    with pytest.raises(UnsupportedFormat, match="starts as text but holds binary data") as err:
        sniff(path)
    with pytest.raises(UnsupportedFormat, match="long run of zero bytes"):
        list(read_text(path))
    assert "'image.txt'" in str(err.value)
    assert time.perf_counter() - started < 30  # reading 2 GB would not fit in a test's time


def test_zero_bytes_between_the_samples_stop_the_reader_there(tmp_path):
    path = tmp_path / "mixed.txt"
    text = b"Words words words.\n" * 8000  # 152 KB: the run below is after the first sample
    with open(path, "wb") as fh:
        fh.write(text[:100_000] + b"\x00" * 5000 + text[100_000:] + text + text)
    assert sniff(path) == "text"  # the head, middle and end are text
    with pytest.raises(UnsupportedFormat, match=r"at about 0\.1 MB"):
        list(read_pages(path))


def test_a_run_cut_across_two_blocks_is_found(tmp_path):
    path = tmp_path / "cut.txt"
    head = b"a line of text\n" * 10_000  # 150 KB
    at = 3 * 64 * 1024 - 30  # the run straddles the end of a 64 KB block
    body = head + b"b" * (at - len(head)) + b"\x00" * 64 + head * 4
    path.write_bytes(body)
    with pytest.raises(UnsupportedFormat, match="long run of zero bytes"):
        list(read_text(path))


# --------------------------------------------------------------------------- %PDF and PK
NOTES = "%PDF is how every PDF file starts; this note is about the format.\nMore words.\n"


@pytest.mark.parametrize("name", ["notes.txt", "notes.md", "notes.csv"])
def test_text_that_starts_like_a_pdf_is_read_as_text_when_named_as_text(tmp_path, name):
    path = tmp_path / name
    path.write_text(NOTES)
    assert sniff(path) == "text"
    assert "this note is about the format" in "".join(p.text for p in read_pages(path))


def test_a_real_pdf_named_as_text_is_still_a_pdf(tmp_path):
    path = tmp_path / "report.txt"
    path.write_bytes(pdf_bytes(["The harbour opens at dawn."]))
    assert sniff(path) == "pdf"
    assert "harbour" in "".join(p.text for p in read_pages(path))


def test_text_starting_like_a_pdf_without_a_text_name_is_a_damaged_pdf(tmp_path):
    path = tmp_path / "notes"
    path.write_text(NOTES)
    assert sniff(path) == "pdf"  # the PDF reader then says it is damaged, naming it


@pytest.mark.parametrize("name", ["zip-notes.txt", "zip-notes.md"])
def test_text_that_starts_like_a_zip_is_read_as_text_when_named_as_text(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 is the signature of a ZIP archive.\nThe rest is prose.\n" * 3)
    assert sniff(path) == "text"
    assert "The rest is prose." in "".join(p.text for p in read_pages(path))
    other = tmp_path / "zip-notes.bin"
    other.write_bytes(path.read_bytes())
    with pytest.raises(UnsupportedFormat, match="damaged ZIP archive"):
        sniff(other)


def test_such_text_is_added_through_the_ingestor(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pdf-notes.txt").write_text(NOTES)
    (docs / "zip-notes.txt").write_bytes(b"PK\x03\x04 starts a ZIP archive, said the note.\n")
    (tmp_path / "home").mkdir()
    library = Library(tmp_path / "home")
    try:
        got = ingest(library, embedder, [docs])
        assert {s for s, _ in got.values()} == {"added"}, got
    finally:
        library.close()


# --------------------------------------------------------------------------- EBCDIC
def test_a_page_in_ascii_that_declares_ebcdic_is_not_read_as_mojibake(tmp_path):
    path = tmp_path / "page.html"
    path.write_bytes(
        b'<html><head><meta charset="IBM500"><title>Ledger</title></head>'
        b"<body><p>The invoice is due on Friday.</p></body></html>"
    )
    [page] = list(read_html(path))
    assert "The invoice is due on Friday." in page.text


def test_a_page_written_in_ebcdic_is_decoded_with_the_code_page_it_declares(tmp_path):
    path = tmp_path / "mainframe.html"
    page = (
        '<html><head><meta charset="cp037"><title>Batch</title></head>'
        "<body><p>The nightly batch ends at 04:00.</p></body></html>"
    )
    path.write_bytes(page.encode("cp037"))
    [got] = list(read_pages(path))
    assert "The nightly batch ends at 04:00." in got.text


# --------------------------------------------------------------------------- control characters
def test_control_characters_in_names_and_text_never_reach_the_terminal(
    home, tiny_embedder, tmp_path, capsys
):
    docs = tmp_path / "docs"
    docs.mkdir()
    evil = docs / "report\x1b[2J\x1b]0;pwned\x07\u202etxt.exe\nfake line.txt"
    evil.write_text("The lighthouse \x1b[31mkeeper\x1b[0m rings the bell at noon.\n")
    (docs / "empty\x1b[5m.txt").write_bytes(b"")  # a failure message that names it
    code, out, err = run(capsys, "ingest", str(docs))
    assert "1 added" in err and "empty (0 bytes)" in err
    for text in (out, err):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "report\\x1b[2J\\x1b]0;pwned\\x07\\u202etxt.exe\\x0afake line.txt" in err
    assert "empty\\x1b[5m.txt" in err
    for argv in (("search", "lighthouse keeper"), ("list",)):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert "\x1b" not in out + err and "\u202e" not in out + err
    code, out, _ = run(capsys, "search", "lighthouse keeper")
    assert "\\x1b[31mkeeper\\x1b[0m" in out


# --------------------------------------------------------------------------- Ctrl-C
def _pending(home) -> bool:
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{home / 'library.sqlite3'}?mode=ro", uri=True, timeout=1)
        try:
            return bool(db.execute("SELECT 1 FROM documents WHERE pending IS NOT NULL").fetchone())
        finally:
            db.close()
    except sqlite3.Error:
        return False


def test_ctrl_c_forgets_the_stopped_file_and_prints_no_traceback(home, tmp_path):
    """Ctrl-C as a terminal sends it: SIGINT to the whole process group, Chroma's child too."""
    import signal
    import subprocess
    import sys

    from app.core.ingest_queue import IngestQueue

    big = tmp_path / "big.txt"
    words = " ".join(f"word{i} of the long ledger" for i in range(200))
    big.write_text((words + "\n") * 600)  # minutes of embedding on a CPU: stopped long before
    env = {**os.environ, "CONFIDANT_HOME": str(home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "ingest", str(big)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, as a shell gives a command
    )
    try:
        deadline = time.monotonic() + 120
        # The file is being added (its version is begun) and Chroma's child is writing it.
        while not (_pending(home) and (home / "vector-store.log").exists()):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.2)
        time.sleep(2)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err.decode(errors="replace")
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"'{big}' was not finished; add it again to read it." in err
    assert "ingestion stopped; files already added are kept." in err
    assert "KeyboardInterrupt" not in (home / "vector-store.log").read_text(errors="replace")
    library = Library(home)
    try:
        assert library.unfinished() == []  # not resumed as if the computer had crashed
        [doc] = library.documents()
        assert (doc.status, doc.chunks) == ("cancelled", 0)
        assert library.recover() == []
    finally:
        library.close()
    assert IngestQueue(home).paths() == []


def test_zero_bytes_far_into_a_markdown_file_stop_its_reader_too(tmp_path):
    from app.core.documents.markdown import read_markdown

    path = tmp_path / "notes.md"
    text = b"# Notes\n\nWords words words.\n" * 6000  # 168 KB: the run is after the first sample
    with open(path, "wb") as fh:
        fh.write(text[:100_000] + b"\x00" * 5000 + text[100_000:] + text + text)
    with pytest.raises(UnsupportedFormat, match=r"long run of zero bytes at about 0\.1 MB"):
        list(read_markdown(path))


def test_a_link_out_of_the_folder_is_a_skip_not_a_failure(tmp_path, capsys):
    """Passed over on purpose: said, counted as skipped, and `ingest` still exits 0."""
    import json

    from app.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The office opens at nine.\n")
    (docs / "to-passwd").symlink_to("/etc/passwd")
    home = tmp_path / "home"
    env = {"CONFIDANT_HOME": str(home), "CONFIDANT_MACHINE_SETTINGS": str(tmp_path / "none")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        code = main(["ingest", str(docs), "--json"])
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    out = json.loads(capsys.readouterr().out)
    status = {os.path.basename(f["path"]): f["status"] for f in out["files"]}
    assert status == {"a.txt": "added", "to-passwd": "skipped"}
    assert code == 0
