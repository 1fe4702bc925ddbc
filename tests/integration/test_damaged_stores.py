"""Damaged stores and a full disk: each is named at open with the way out, nothing is deleted
as a consequence, and `confidant repair` rebuilds the library from the documents' files while
the chats and settings stay. Real Chroma, real SQLite, real files, the real tiny embedder."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from app.cli import EXIT_DAMAGED, main
from app.core.cancel import CancelToken
from app.core.events import FileDone
from app.core.history import ChatHistory
from app.core.library import ChunkRecord, Library
from app.core.repair import RepairFinished, RepairStarted
from app.core.store_health import LibraryDamaged, check, check_library

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- a library to damage
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """1,500 passages in 50 documents (past Chroma's 1,000-record sync, so its
    index_metadata.pickle exists), made through Library with small random vectors."""
    home = tmp_path_factory.mktemp("template")
    lib = Library(home)
    for d in range(50):
        texts = [f"document {d} passage {i} about topic{d % 7}" for i in range(30)]
        vectors = np.random.default_rng(d).normal(size=(30, 8)).astype(np.float32)
        doc = lib.begin_version(f"/docs/{d}.txt", f"v{d}", 10, 1.0)
        lib.add_chunks(
            doc, f"v{d}", [ChunkRecord(i, None, 0, 1, t) for i, t in enumerate(texts)], vectors
        )
        lib.commit_version(doc, f"v{d}", 30, 1)
    lib.close()
    assert list(home.glob("library/*/index_metadata.pickle"))
    return home


@pytest.fixture
def damaged(template, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(template, home)
    return home


def _pickle(home: Path) -> Path:
    return next(home.glob("library/*/index_metadata.pickle"))


def _bad_text_in_queue(home: Path) -> None:
    db = sqlite3.connect(home / "library" / "chroma.sqlite3")
    db.execute(
        "UPDATE embeddings_queue SET metadata=CAST(x'7b22ff22' AS TEXT) "
        "WHERE rowid=(SELECT max(rowid) FROM embeddings_queue)"
    )
    db.commit()
    db.close()


def _flip_page(path: Path) -> None:
    """Overwrite the second page's header (the first page after the schema) with garbage."""
    data = bytearray(path.read_bytes())
    data[4096 : 4096 + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


DAMAGE = {
    "pickle emptied by a full disk": (
        lambda h: _pickle(h).write_bytes(b""),
        "index_metadata.pickle",
        "it is empty",
    ),
    "pickle cut short": (
        lambda h: _pickle(h).write_bytes(_pickle(h).read_bytes()[:100]),
        "index_metadata.pickle",
        "cannot be read",
    ),
    "library.sqlite3 deleted": (
        lambda h: (h / "library.sqlite3").unlink(),
        "library.sqlite3",
        "it is missing, while the vector store holds 1500 passages",
    ),
    "library.sqlite3 emptied": (
        lambda h: (h / "library.sqlite3").write_bytes(b""),
        "library.sqlite3",
        "it is empty, while the vector store holds 1500 passages",
    ),
    "library.sqlite3 cut short": (
        lambda h: os.truncate(h / "library.sqlite3", 8192),
        "library.sqlite3",
        "SQLite finds it damaged",
    ),
    "library.sqlite3 overwritten": (
        lambda h: _flip_page(h / "library.sqlite3"),
        "library.sqlite3",
        "damaged",
    ),
    "vector store deleted": (
        lambda h: shutil.rmtree(h / "library"),
        "library",
        "it is missing, while 1500 passages need it",
    ),
    "vector store emptied": (
        lambda h: [
            shutil.rmtree(p) if p.is_dir() else p.unlink() for p in (h / "library").iterdir()
        ],
        "chroma.sqlite3",
        "it is missing, while 1500 passages need it",
    ),
    "vector index folder deleted": (
        lambda h: shutil.rmtree(_pickle(h).parent),
        "library/",
        "are missing",
    ),
    "chroma.sqlite3 overwritten": (
        lambda h: _flip_page(h / "library" / "chroma.sqlite3"),
        "chroma.sqlite3",
        "damaged",
    ),
    "text Chroma would panic on": (
        _bad_text_in_queue,
        "chroma.sqlite3",
        "its table embeddings_queue holds damaged text",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_each_damage_is_named_at_open_and_nothing_is_deleted(damaged, case):
    spoil, where, words = DAMAGE[case]
    spoil(damaged)
    before = {p: p.read_bytes() for p in damaged.rglob("*") if p.is_file()}
    with pytest.raises(LibraryDamaged) as raised:
        Library(damaged)
    message = str(raised.value)
    assert where in message and words in message, message
    assert "confidant repair" in message and "chats and settings are kept" in message
    after = {p: p.read_bytes() for p in damaged.rglob("*") if p.is_file()}
    assert after == before  # refused before anything was read into Chroma or written
    assert not check(damaged).ok


def test_a_healthy_library_and_a_new_one_pass(template, tmp_path):
    assert check_library(template) == [] and check_library(tmp_path / "new") == []
    (tmp_path / "new").mkdir()
    lib = Library(tmp_path / "new")  # a first start: nothing to compare with
    lib.close()


def test_every_command_on_a_damaged_library_says_so_once_and_exits_non_zero(damaged, monkeypatch):
    (damaged / "library.sqlite3").unlink()
    monkeypatch.setenv("CONFIDANT_HOME", str(damaged))
    # A subprocess: the real entry point, stderr as the user sees it (Chroma's child included).
    for command in (["list"], ["search", "topic"], ["remove", "/docs/1.txt"]):
        done = subprocess.run(
            [sys.executable, "-m", "app", *command], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == EXIT_DAMAGED, done.stderr
        assert done.stderr.startswith("confidant: The library is damaged: the documents table")
        assert "confidant repair" in done.stderr
        assert "run the same command again" not in done.stderr
        assert "Traceback" not in done.stderr and "panicked" not in done.stderr
        assert done.stdout == ""
    # The vectors are all still there, for repair to read their paths from.
    db = sqlite3.connect(damaged / "library" / "chroma.sqlite3")
    assert db.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 1500
    db.close()


def test_a_panic_in_chromas_core_goes_to_its_log_not_the_terminal(damaged, capfd):
    from app.core.vector_store import CollectionProcess, VectorStoreDamaged

    _bad_text_in_queue(damaged)
    store = CollectionProcess(damaged / "library", "chunks")  # past Library's check, on purpose
    try:
        with pytest.raises(VectorStoreDamaged):
            store.start()
            store.query(query_embeddings=[[0.1] * 8], n_results=1, include=["distances"])
    finally:
        store.close()
    assert "panicked" not in capfd.readouterr().err
    assert "panicked" in (damaged / "vector-store.log").read_text(errors="replace")


# --------------------------------------------------------------------------- chats
def test_a_garbage_chats_file_is_set_aside_and_a_fresh_one_started(tmp_path):
    path = tmp_path / "chats.sqlite3"
    garbage = os.urandom(9000)
    path.write_bytes(garbage)
    history = ChatHistory(path)
    try:
        assert history.set_aside is not None and history.set_aside.read_bytes() == garbage
        assert history.set_aside.parent.name.startswith("damaged-")
        assert "could not be read" in history.note()
        conversation = history.create("after")
        history.add(conversation.id, "user", "still works")
        assert [c.title for c in history.conversations()] == ["after"]
    finally:
        history.close()
    again = ChatHistory(path)  # the fresh file is healthy: nothing set aside this time
    assert again.set_aside is None and again.note() is None
    again.close()


# --------------------------------------------------------------------------- repair
def _cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def real_library(home, tmp_path, shared_models, capsys):
    docs = tmp_path / "docs"
    docs.mkdir()
    topics = {
        "leave.txt": "Every employee receives twenty-seven days of paid holiday per year.",
        "parking.txt": "Visitors park in the north garage; badges are issued at reception.",
        "expenses.txt": "Expense claims are filed within thirty days with receipts attached.",
    }
    for name, text in topics.items():
        (docs / name).write_text(text + "\n", encoding="utf-8")
    code, _, err = _cli(capsys, "ingest", str(docs), "--json")
    assert code == 0, err
    history = ChatHistory(home / "chats.sqlite3")
    conv = history.create("Holidays")
    history.add(conv.id, "user", "How many days of leave?")
    history.add(conv.id, "assistant", "27 [1]", [{"n": 1, "path": str(docs / "leave.txt")}])
    history.close()
    (home / "settings.toml").write_text("sources = 4\n", encoding="utf-8")
    return docs


def _search_top(capsys, query):
    code, out, err = _cli(capsys, "search", query, "--json")
    assert code == 0, err
    return os.path.basename(json.loads(out)["hits"][0]["path"])


def test_repair_rebuilds_a_lost_documents_table_from_the_vector_stores_records(
    real_library, home, capsys
):
    (home / "library.sqlite3").unlink()
    code, _, err = _cli(capsys, "list")
    assert code == EXIT_DAMAGED and "confidant repair" in err
    code, out, err = _cli(capsys, "repair", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["source"] == "the vector store's records"
    assert sorted(os.path.basename(f["path"]) for f in result["files"]) == [
        "expenses.txt",
        "leave.txt",
        "parking.txt",
    ]
    assert {f["status"] for f in result["files"]} == {"added"}
    kept = Path(result["kept_in"])
    assert kept.parent == home and (kept / "library" / "chroma.sqlite3").exists()
    assert _search_top(capsys, "how many holiday days") == "leave.txt"
    # Chats and settings untouched.
    history = ChatHistory(home / "chats.sqlite3")
    assert [c.title for c in history.conversations()] == ["Holidays"] and history.set_aside is None
    history.close()
    assert (home / "settings.toml").read_text(encoding="utf-8") == "sources = 4\n"
    code, _, err = _cli(capsys, "repair")
    assert code == 0 and "healthy" in err


def test_repair_of_a_lost_vector_store_reads_the_documents_table_and_names_missing_files(
    real_library, home, capsys
):
    for p in (home / "library").iterdir():
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    (real_library / "parking.txt").unlink()  # gone since: cannot be rebuilt
    code, _, err = _cli(capsys, "ingest", str(real_library))
    assert code == EXIT_DAMAGED and "the vector store" in err  # never "unchanged"
    code, out, err = _cli(capsys, "repair", "--json")
    result = json.loads(out)
    assert code == 1  # a document could not be rebuilt: said, and the exit says so
    assert result["source"] == "the library's documents table"
    assert [os.path.basename(p) for p in result["missing"]] == ["parking.txt"]
    assert sorted(os.path.basename(f["path"]) for f in result["files"]) == [
        "expenses.txt",
        "leave.txt",
    ]
    assert _search_top(capsys, "expense receipts deadline") == "expenses.txt"


def test_a_repair_stopped_midway_keeps_what_it_rebuilt_and_the_next_finishes(
    real_library, home, capsys, shared_models
):
    _flip_page(home / "library" / "chroma.sqlite3")
    services = shared_models(home)
    token = CancelToken()
    events = []
    try:
        for event in services.repair(token):
            events.append(event)
            if isinstance(event, FileDone) and event.status == "added":
                token.cancel()  # the user pressed Stop after the first file
    finally:
        services.close()
    started = next(e for e in events if isinstance(e, RepairStarted))
    finished = events[-1]
    assert isinstance(finished, RepairFinished) and finished.cancelled
    assert len(started.paths) == 3 and started.damaged[0].path.name == "chroma.sqlite3"
    added = [e.path for e in events if isinstance(e, FileDone) and e.status == "added"]
    assert 1 <= len(added) < 3
    code, out, err = _cli(capsys, "repair", "--json")  # finishes the queued rest
    assert code == 0, err
    result = json.loads(out)
    assert result["damaged"] == [] and result["kept_in"] is None
    rest = {f["path"] for f in result["files"] if f["status"] == "added"}
    assert rest == set(started.paths) - set(added)
    code, out, _ = _cli(capsys, "list", "--json")
    assert sorted(d["status"] for d in json.loads(out)["documents"]) == ["ready"] * 3


# --------------------------------------------------------------------------- a full disk
def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
        capture_output=True,
    )
    return done.returncode == 0


FULL_DISK_RUN = textwrap.dedent(
    """
    import sys
    import app.core.store_health as health
    health.DISK_RESERVE = int(sys.argv[1])
    from app.cli import main
    if __name__ == "__main__":
        raise SystemExit(main(sys.argv[2:]))
    """
)


@pytest.mark.skipif(not _can_mount_tmpfs(), reason="no user namespace to mount a small tmpfs")
@pytest.mark.parametrize("reserve", [64 << 20, 0], ids=["stopped-by-the-reserve", "real-enospc"])
def test_a_full_disk_during_ingest_says_so_and_leaves_a_readable_library(tmp_path, reserve):
    """A 3 MB tmpfs (its own mount namespace) holds the data directory. With the reserve the
    ingest stops before Chroma writes, and the library stays whole. Without it (0) the disk
    fills under Chroma and SQLite; Chroma may then leave its index_metadata.pickle empty (it
    rewrites it in place), which is named at open and mended by `confidant repair`. Either
    way: one sentence about the disk, and once space is free the library finishes."""
    docs = tmp_path / "docs"
    docs.mkdir()
    words = Path(__file__).read_text(encoding="utf-8").split()
    for i in range(30):
        (docs / f"d{i:02}.txt").write_text(" ".join(words[i:] + words[:i]) * 2, encoding="utf-8")
    script = tmp_path / "run.py"
    script.write_text(FULL_DISK_RUN, encoding="utf-8")
    mount, copy = tmp_path / "full", tmp_path / "after"
    mount.mkdir()
    root = Path(__file__).resolve().parents[2]
    shell = (
        f"mount -t tmpfs -o size=3m tmpfs {mount} && cd {root} && "
        f"CONFIDANT_HOME={mount}/home {sys.executable} {script} {reserve} ingest {docs} "
        f"2>{tmp_path}/err; echo $? > {tmp_path}/rc; cp -a {mount}/home {copy}"
    )
    subprocess.run(["unshare", "-rm", "sh", "-c", shell], check=True, timeout=600)
    err = (tmp_path / "err").read_text()
    assert int((tmp_path / "rc").read_text()) == 1, err
    assert "The disk is full: free space on the disk holding" in err
    assert "nothing already added is lost" in err and "unexpected error" not in err
    env = {**os.environ, "CONFIDANT_HOME": str(copy)}
    report = check(copy)
    if reserve:
        assert report.ok, report
    elif not report.ok:  # the bricked library: named, then repaired
        assert [d.path.name for d in report.damages] == ["index_metadata.pickle"], report
        done = subprocess.run(
            [sys.executable, "-m", "app", "list"], capture_output=True, text=True, env=env
        )
        assert done.returncode == EXIT_DAMAGED and "index_metadata.pickle" in done.stderr
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            *(["ingest", str(docs)] if report.ok else ["repair"]),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    statuses = {f["status"] for f in json.loads(done.stdout)["files"]}
    assert statuses <= {"added", "unchanged"} and check(copy).ok
