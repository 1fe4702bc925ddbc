"""Bad input, made by the tests, through the real Ingestor, the real embedder and a real Chroma:
each file gets its own status and a plain message, the run goes on with the rest, and what was
already in the library does not change (same chunk ids, Library.verify() == [])."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import app.core.ingest as ingest_module
from app.core.cancel import CancelToken
from app.core.events import FileDone, FileProgress, IngestFinished, IngestStarted
from app.core.ingest import IngestOptions, Ingestor
from app.core.ingest_queue import IngestQueue
from app.core.library import Library
from tests.pdfmaker import make_pdf, pdf_bytes

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def run_ingest(library, embedder, paths, cancel=None, **options):
    ingestor = Ingestor(library, embedder, IngestOptions(**options))
    events = list(ingestor.run([str(p) for p in paths], cancel or CancelToken()))
    assert isinstance(events[0], IngestStarted) and isinstance(events[-1], IngestFinished)
    done = [e for e in events if isinstance(e, FileDone)]
    return {Path(e.path).name: (e.status, e.error) for e in done}, events


def live_ids(library: Library) -> dict[str, list[str]]:
    """Chunk ids of the live version of every ready document, by path."""
    out = {}
    for d in library.documents():
        if d.status == "ready":
            rows = library._db.execute(
                "SELECT id FROM chunks WHERE doc_id=? AND version=? ORDER BY idx", (d.id, d.hash)
            )
            out[d.path] = [r[0] for r in rows]
    return out


@pytest.fixture
def library(tmp_path, embedder):
    """A library that already holds two good documents."""
    home = tmp_path / "home"
    home.mkdir()
    lib = Library(home)
    good = tmp_path / "good"
    good.mkdir()
    make_pdf(good / "handbook.pdf", ["The fire assembly point is the north car park."] * 2)
    (good / "wifi.txt").write_text("The guest network code is KX-4471-PELICAN.\n")
    got, _ = run_ingest(lib, embedder, [good])
    assert {s for s, _ in got.values()} == {"added"}
    yield lib
    lib.close()


def bad_corpus(folder: Path, source_pdf: bytes) -> None:
    from pypdf import PdfReader, PdfWriter

    folder.mkdir()
    (folder / "truncated.pdf").write_bytes(source_pdf[: len(source_pdf) * 6 // 10])
    middle = len(source_pdf) // 2
    garbled = source_pdf[:middle] + os.urandom(400) + source_pdf[middle + 400 :]
    (folder / "garbage inside.pdf").write_bytes(garbled)
    for name, user in (("locked.pdf", "hunter2"), ("owner only.pdf", "")):
        writer = PdfWriter(clone_from=PdfReader(_pdf(folder.parent / f"src-{name}", name)))
        writer.encrypt(user_password=user, owner_password="owner-secret")
        writer.write(folder / name)
    make_pdf(folder / "scan.pdf", ["", "", ""])
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.txt").write_text("   \n\n\t  \n")
    (folder / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (folder / "not a zip.docx").write_bytes(b"This was never a Word file.\n" * 20)
    script = "var x = 'zzscriptzz';\n" * 4000
    (folder / "mostly script.html").write_text(
        f"<html><head><script>{script}</script></head><body><script>{script}</script>"
        "<p>The gazebo key hangs under the blue flowerpot.</p></body></html>"
    )
    (folder / "only script.html").write_text(f"<html><body><script>{script}</script></body></html>")
    (folder / "utf16.txt").write_bytes(
        "Le café de la gare ouvre à sept heures, naïvement dit la façade.\n".encode("utf-16")
    )
    (folder / "utf16 no bom.txt").write_bytes(
        "Die Größe des Lagers beträgt vierhundert Quadratmeter.\n".encode("utf-16-le")
    )
    (folder / "windows.txt").write_bytes(
        "Der Schlüssel für das Büro liegt bei Frau Müller; Gebühr 20 € pro Monat.\n".encode(
            "cp1252"
        )
    )
    (folder / "議事録 会議.txt").write_text(
        "会議は月曜日に開かれます。 The meeting is on Mondays.\n"
    )
    (folder / "отчёт за май.txt").write_text("Отчёт: продажи выросли. Sales grew in May.\n")
    sub = folder / "sub folder"
    sub.mkdir()
    (sub / "inside loop.txt").write_text("A file inside a folder that links back to its parent.\n")
    (sub / "back to top").symlink_to(folder, target_is_directory=True)
    (folder / "self link.txt").symlink_to(folder / "self link.txt")
    os.mkfifo(folder / "pipe.txt")
    (folder / "no access.txt").write_text("Only the owner may read this file.\n")
    os.chmod(folder / "no access.txt", 0)
    (folder / "permission denied.txt").write_text("The system refuses to open this one.\n")
    (folder / "vanishing.txt").write_text("This file is deleted after the folder is listed.\n")


def _pdf(path: Path, name: str) -> Path:
    return make_pdf(path, [f"The document {name} says the vault combination is 31-12-77."])


@pytest.fixture
def refusing_open(monkeypatch):
    """`open` raises PermissionError for 'permission denied.txt' (tests run as root here)."""
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and str(file).endswith("permission denied.txt"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)


@pytest.fixture
def vanishing_after_listing(monkeypatch):
    """The walk lists 'vanishing.txt', then the file is deleted before it is read."""
    real_expand = ingest_module.expand

    def expand_then_delete(paths):
        files, problems = real_expand(paths)
        for f in files:
            if f.name == "vanishing.txt":
                f.unlink()
        return files, problems

    monkeypatch.setattr(ingest_module, "expand", expand_then_delete)


EXPECTED = {
    # name: (status, words the message must contain)
    "truncated.pdf": ("failed", "damaged"),
    "locked.pdf": ("failed", "password"),
    "scan.pdf": ("skipped", "no text layer"),
    "empty.txt": ("skipped", "empty"),
    "blank.txt": ("skipped", "blank space"),
    "binary.txt": ("skipped", "binary data"),
    "not a zip.docx": ("failed", "not a Word document"),
    "only script.html": ("skipped", "mostly script"),
    "pipe.txt": ("failed", "not an ordinary file"),
    "permission denied.txt": ("failed", "permission denied"),
    "vanishing.txt": ("failed", "still exists"),
    "owner only.pdf": ("added", None),
    "mostly script.html": ("added", None),
    "utf16.txt": ("added", None),
    "utf16 no bom.txt": ("added", None),
    "windows.txt": ("added", None),
    "議事録 会議.txt": ("added", None),
    "отчёт за май.txt": ("added", None),
    "inside loop.txt": ("added", None),
}


def test_every_bad_file_gets_its_own_status_and_the_library_is_untouched(
    library, embedder, tmp_path, refusing_open, vanishing_after_listing
):
    before = live_ids(library)
    bad = tmp_path / "bad"
    bad_corpus(bad, pdf_bytes(["Page one of a good report."] * 6))
    got, events = run_ingest(library, embedder, [bad])
    print("\n".join(f"{n}: {s}: {e}" for n, (s, e) in sorted(got.items())))
    for name, (status, words) in EXPECTED.items():
        assert name in got, f"{name} was not reported"
        assert got[name][0] == status, (name, got[name])
        if words:
            assert words.lower() in got[name][1].lower(), (name, got[name][1])
            assert "Traceback" not in got[name][1] and f"'{name}'" in got[name][1]
    # The loop is walked once; the looping file link is passed over, not read forever.
    assert list(got).count("inside loop.txt") == 1
    # A PDF with garbage in its middle: read what can be read, or refuse it as damaged.
    status, error = got["garbage inside.pdf"]
    assert status == "added" or (status == "failed" and "damaged" in error), (status, error)
    # As root, chmod 000 does not stop us; as a user it is a permission failure.
    status, error = got["no access.txt"]
    assert status == "added" if os.geteuid() == 0 else "permission denied" in error
    # What was there before is untouched; the store is consistent.
    after = live_ids(library)
    assert {p: after[p] for p in before} == before
    assert library.verify() == []
    finished = events[-1]
    assert finished.counts["failed"] >= 6 and finished.counts["skipped"] >= 5
    # Re-encoded and foreign text is searchable as the words it spells.
    for word, name in [
        ("Schlüssel", "windows.txt"),
        ("Gebühr", "windows.txt"),
        ("café", "utf16.txt"),
        ("Größe", "utf16 no bom.txt"),
        ("продажи", "отчёт за май.txt"),
        ("gazebo", "mostly script.html"),
        ("combination", "owner only.pdf"),
    ]:
        ids = library.keyword_search(word, 5)
        hits = library.hits_for_ids(ids)
        assert any(Path(h.path).name == name and word in h.text for h in hits.values()), word
    assert "€" in next(
        h.text for h in library.hits_for_ids(library.keyword_search("Gebühr", 1)).values()
    )
    assert library.keyword_search("zzscriptzz", 5) == []
    # Nothing about the failures changes on a second run; the good files are unchanged.
    again, _ = run_ingest(library, embedder, [bad])
    assert all(again[n][0] == "unchanged" for n, (s, _) in EXPECTED.items() if s == "added")
    assert live_ids(library) == after


def test_ten_thousand_small_files(tmp_path, embedder):
    folder = tmp_path / "many"
    for d in range(10):
        sub = folder / f"box {d}"
        sub.mkdir(parents=True)
        for i in range(1000):
            n = d * 1000 + i
            (sub / f"memo {n}.txt").write_text(f"Locker {n} code {n * 7 % 9973}.")
    (tmp_path / "home").mkdir()
    lib = Library(tmp_path / "home")
    started = time.perf_counter()
    got, events = run_ingest(lib, embedder, [folder])
    seconds = time.perf_counter() - started
    print(f"\n10,000 small files ingested in {seconds:.1f} s")
    assert len(got) == 10_000 and {s for s, _ in got.values()} == {"added"}
    assert events[-1].counts["added"] == 10_000 and lib.chunk_count() == 10_000
    assert lib.verify() == []
    hits = lib.hits_for_ids(lib.keyword_search("4321", 10))
    assert {Path(h.path).name for h in hits.values()} == {"memo 4321.txt", "memo 2042.txt"}
    lib.close()


STREAM_SCRIPT = textwrap.dedent(
    """
    import os, resource, sys
    sys.path.insert(0, sys.argv[2])
    from app.core.chunking import chunk_pages
    from app.core.documents import read_pages

    class CoarseTokenizer:
        '''Offsets of 64-character pieces: the real chunker's work without BERT's cost.'''
        def encode(self, texts):
            return [([0] * len(range(0, len(t), 64)),
                     [(i, min(i + 64, len(t))) for i in range(0, len(t), 64)]) for t in texts]

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    chars = chunks = 0
    for chunk in chunk_pages(read_pages(sys.argv[1]), CoarseTokenizer(), 200, 40):
        chunks += 1
        chars = max(chars, chunk.end)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(chunks, (peak - base) * 1024)
    """
)


@pytest.fixture(scope="module")
def big_text(tmp_path_factory):
    """A 200 MB text file, written 1 MB at a time."""
    path = tmp_path_factory.mktemp("big") / "two hundred megabytes.txt"
    line = "The ledger for harbour permits lists tariffs, vessels and wardens by month.\n"
    block = (line * (2**20 // len(line) + 1))[: 2**20].encode()
    with open(path, "wb") as fh:
        for _ in range(200):
            fh.write(block)
    yield path
    path.unlink()


def test_a_200_mb_text_file_is_read_and_chunked_in_bounded_memory(big_text):
    """The whole file goes through sniffing, decoding and chunking; memory stays flat."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", STREAM_SCRIPT, str(big_text), str(ROOT)],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    chunks, growth = map(int, out.split())
    print(f"\n200 MB read and chunked in {time.perf_counter() - started:.1f} s, +{growth >> 20} MB")
    assert chunks > 200 * 2**20 // (200 * 64)  # it really went through the whole file
    assert growth < 200 * 2**20  # flat, far below the file's size (limit: 1.5 GB)


def test_a_200_mb_text_file_through_the_real_pipeline_is_memory_bounded(
    big_text, embedder, tmp_path
):
    """Reader, queue, real embedder and store together: the reader cannot run ahead of the
    embedder (the queue bounds it), so a huge file costs little memory; cancelling it midway
    leaves nothing behind."""
    import psutil

    me = psutil.Process()
    (tmp_path / "home").mkdir()
    lib = Library(tmp_path / "home")
    peak = start = me.memory_info().rss
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, me.memory_info().rss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cancel = CancelToken()
    ingestor = Ingestor(lib, embedder, IngestOptions(embed_window=32))
    started = time.perf_counter()
    embedded = 0
    for event in ingestor.run([str(big_text)], cancel):
        if isinstance(event, FileProgress):
            embedded = event.chunks
            if time.perf_counter() - started > 8 or embedded >= 320:
                cancel.cancel()
        elif isinstance(event, FileDone):
            assert event.status == "cancelled"
    stop.set()
    sampler.join()
    print(f"\nreal pipeline: {embedded} chunks embedded, +{(peak - start) >> 20} MB")
    assert embedded >= 32
    assert peak - start < 1536 * 2**20
    row = lib.document(str(big_text))
    assert row.status == "cancelled" and row.hash is None and lib.chunk_count() == 0
    assert lib.verify() == []
    lib.close()


def test_stop_lands_between_forward_passes_of_one_embedding_window(embedder, tmp_path):
    """The ingester hands the embedder a wide window (less padding); Stop must not wait for it:
    after the cancel, no further forward pass starts, and the file is left cancelled."""
    doc = tmp_path / "long.txt"
    doc.write_text(" ".join(f"clause{i} of the lease agreement" for i in range(12_000)))
    (tmp_path / "home").mkdir()
    lib = Library(tmp_path / "home")
    cancel = CancelToken()
    passes = {"before": 0, "after": 0}

    def count(_module, _args):
        passes["after" if cancel.cancelled else "before"] += 1
        if passes["before"] == 2:
            cancel.cancel()  # from inside the second pass, as a Stop click would land

    hook = embedder.load().register_forward_pre_hook(count)
    try:
        ingestor = Ingestor(lib, embedder, IngestOptions(embed_window=100_000))
        done = [e for e in ingestor.run([str(doc)], cancel) if isinstance(e, FileDone)]
    finally:
        hook.remove()
    assert passes == {"before": 2, "after": 0}
    assert [e.status for e in done] == ["cancelled"]
    assert lib.chunk_count() == 0 and lib.verify() == []
    lib.close()


# --------------------------------------------------------------------------- one library, one app
def cli(capsys, *argv):
    from app.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "role, named", [("window", "the Confidant window"), ("ingest", "'confidant ingest'")]
)
def test_a_second_confidant_is_refused_and_told_who_holds_the_library(home, capsys, role, named):
    from app.config import data_dir
    from app.core.instance import InstanceLock

    with InstanceLock(data_dir(), role):
        code, _, err = cli(capsys, "list")
    assert code == 2
    assert f"{named} (process {os.getpid()}, started " in err
    assert "already using the library" in err and "CONFIDANT_HOME" in err
    assert cli(capsys, "list")[0] == 0  # released: the next one gets in


# --------------------------------------------------------------------------- another embedder
@pytest.fixture
def other_embedder(tmp_path):
    """The default MiniLM folder under another identity: weights linked, config.json changed."""
    import json as _json

    from app.config import default_embedder_path

    src = default_embedder_path()
    dst = tmp_path / "other-embedder"
    for item in src.rglob("*"):
        target = dst / item.relative_to(src)
        if item.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif item.name == "config.json" and item.parent == src:
            target.parent.mkdir(parents=True, exist_ok=True)
            cfg = _json.loads(item.read_text())
            cfg["_name_or_path"] = "other-minilm"
            target.write_text(_json.dumps(cfg))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(item)
    return dst


def test_another_embedding_model_is_refused_until_reindex(
    home, tmp_path, capsys, monkeypatch, embedder, other_embedder
):
    from app.core.embedding import Embedder
    from tests.conftest import services_with

    def make(path):
        if path == embedder.path:
            return embedder
        e = Embedder(path, device="cpu")
        e.load()
        return e

    services_with(monkeypatch, embedder_factory=make)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "memo.txt").write_text("The archive room is in the basement, door B12.\n")
    assert cli(capsys, "ingest", str(docs))[0] == 0
    lib = Library(home)
    before = (lib.embedder(), list(lib.stored_chunk_ids()), lib.documents())
    lib.close()
    (home / "settings.toml").write_text(f'embedder_path = "{other_embedder}"\n')
    (docs / "new.txt").write_text("A new file that must not be embedded with another model.\n")
    code, _, err = cli(capsys, "ingest", str(docs))
    assert code == 2
    assert IngestQueue(home).paths() == []  # refused: not picked up by a later run either
    assert "Vectors of two models cannot be mixed" in err and "confidant reindex" in err
    assert "MiniLM-L6-H384-uncased@" in err and "other-minilm@" in err
    lib = Library(home)
    assert (lib.embedder(), list(lib.stored_chunk_ids()), lib.documents()) == before
    lib.close()
    code, _, err = cli(capsys, "reindex")
    assert code == 0, err
    lib = Library(home)
    assert lib.embedder().startswith("other-minilm@")
    assert [d.status for d in lib.documents()] == ["ready"] and lib.verify() == []
    assert set(lib.stored_chunk_ids()).isdisjoint(before[1]) or lib.chunk_count() == 1
    lib.close()
    assert cli(capsys, "ingest", str(docs))[0] == 0  # the new model is now the library's


# --------------------------------------------------------------------------- models that fail
@pytest.fixture
def small_library(home, tmp_path, capsys, shared_embedder_only):
    """One document, ingested with the session's embedder; the LLM is left to each test."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fleet.txt").write_text("The company van is serviced every March at Doyle Motors.\n")
    assert cli(capsys, "ingest", str(docs))[0] == 0
    return home


def bad_models(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    from app.config import default_llm_path

    real = default_llm_path().read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(real[: len(real) // 3])
    notgguf = tmp_path / "weights.gguf"
    notgguf.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(4096))
    return {
        "missing": (tmp_path / "nowhere.gguf", "does not exist"),
        "not gguf": (notgguf, "not a GGUF"),
        "truncated": (truncated, "incomplete"),
    }


QUESTION = "When is the company van serviced?"


def test_a_broken_model_is_a_clear_message_and_search_still_works(
    small_library, tmp_path, capsys, shared_embedder_only
):
    from app.core.events import AnswerFailed, AnswerStage, SourcesFound

    for kind, (path, words) in bad_models(tmp_path).items():
        code, out, err = cli(capsys, "ask", QUESTION, "--model", str(path))
        assert code == 2 and words in err and "Traceback" not in err, (kind, err)
        services = shared_embedder_only(small_library, model_override=str(path))
        events = list(services.chat().ask(QUESTION, CancelToken()))
        services.close()
        # Failed before any source was shown (only the stages it had reached came before).
        assert not [e for e in events if isinstance(e, SourcesFound)], events
        assert [type(e) for e in events[:-1]] == [AnswerStage] * (len(events) - 1), events
        assert isinstance(events[-1], AnswerFailed) and words in events[-1].message, (kind, events)
    code, out, _ = cli(capsys, "search", "van service", "--json")
    assert code == 0 and "Doyle Motors" in out


def test_a_model_too_large_for_memory_is_refused_before_loading(
    small_library, capsys, monkeypatch, shared_embedder_only
):
    import psutil

    from app.core.events import AnswerFailed

    class Tiny:
        total = 16 * 2**20
        available = 8 * 2**20

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Tiny())
    code, _, err = cli(capsys, "ask", QUESTION)
    assert code == 2 and "needs about" in err and "Choose a smaller model" in err, err
    services = shared_embedder_only(small_library)
    events = list(services.chat().ask(QUESTION, CancelToken()))
    services.close()
    assert isinstance(events[-1], AnswerFailed) and "0.0 GiB of memory" in events[-1].message
    code, out, _ = cli(capsys, "search", "van service", "--json")
    assert code == 0 and "Doyle Motors" in out
