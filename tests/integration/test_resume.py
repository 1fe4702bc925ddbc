"""Nothing asked for is forgotten: a run stopped by a closing window, or a re-index cut short,
is finished by the next start (Ingestor.resumable), through the real embedder and Chroma, and
ends with the same chunks as a run that was never stopped. A new passage size re-cuts the
library document by document, searchable throughout."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.cancel import CancelToken
from app.core.events import FileDone
from app.core.ingest import FIRST_CUT, IngestOptions, Ingestor, file_hash, version_of
from app.core.ingest_queue import IngestQueue
from app.core.library import Library
from tests.integration.test_bad_inputs import live_ids
from tests.pdfmaker import make_pdf

pytestmark = pytest.mark.slow


def _docs(folder: Path) -> Path:
    folder.mkdir()
    for i in range(3):
        make_pdf(folder / f"minutes {i}.pdf", [f"Minutes of meeting {i}. The budget is {i}00."] * 2)
    (folder / "notes.txt").write_text("The archive room key is kept by the caretaker.\n")
    return folder


def _by_name(ids: dict[str, list[str]]) -> dict[str, list[str]]:
    return {Path(p).name: v for p, v in ids.items()}


@pytest.fixture
def reference(tmp_path, embedder):
    """Chunk ids of an uninterrupted run over the same files."""
    docs = _docs(tmp_path / "docs")
    (tmp_path / "reference").mkdir()
    lib = Library(tmp_path / "reference")
    list(Ingestor(lib, embedder).run([str(docs)], CancelToken()))
    want = _by_name(live_ids(lib))
    lib.close()
    assert len(want) == 4
    return docs, want


def test_a_run_stopped_by_closing_is_finished_at_the_next_start(tmp_path, embedder, reference):
    docs, want = reference
    home = tmp_path / "home"
    home.mkdir()
    lib = Library(home)
    queue = IngestQueue(home)
    queue.add([str(docs)])  # as the window does when the folder is dropped
    closing = CancelToken()
    done = []
    for event in Ingestor(lib, embedder, ingest_queue=queue).run([str(docs)], closing):
        if isinstance(event, FileDone):
            done.append(event.status)
            closing.cancel()  # the window closes after the first file
    assert done[0] == "added" and len(_by_name(live_ids(lib))) < 4
    lib.close()

    lib, queue = Library(home), IngestQueue(home)  # the next start
    ingestor = Ingestor(lib, embedder, ingest_queue=queue)
    assert ingestor.resumable() == [str(docs)]
    list(ingestor.run(ingestor.resumable(), CancelToken()))
    assert _by_name(live_ids(lib)) == want
    assert lib.verify() == []
    assert queue.paths() == [] and IngestQueue(home).paths() == []
    assert ingestor.resumable() == []
    lib.close()


def test_a_reindex_cut_short_is_finished_and_deleted_files_are_left_out(
    tmp_path, embedder, reference
):
    docs, want = reference
    home = tmp_path / "home"
    home.mkdir()
    lib = Library(home)
    ingestor = Ingestor(lib, embedder, ingest_queue=IngestQueue(home))
    list(ingestor.run([str(docs)], CancelToken()))
    assert ingestor.resumable() == []
    lib.reset()  # a re-index starts, and the app is closed before any file is read again
    lib.close()

    lib = Library(home)
    ingestor = Ingestor(lib, embedder, ingest_queue=IngestQueue(home))
    (docs / "notes.txt").unlink()  # deleted meanwhile: nothing to resume for it
    resumable = ingestor.resumable()
    assert sorted(Path(p).name for p in resumable) == [f"minutes {i}.pdf" for i in range(3)]
    list(ingestor.run(resumable, CancelToken()))
    del want["notes.txt"]
    assert _by_name(live_ids(lib)) == want
    assert lib.verify() == []
    lib.close()


def test_a_version_is_the_bytes_and_the_cut_and_the_first_cut_keeps_old_versions():
    h = "ab" * 32
    assert version_of(h, *FIRST_CUT) == h  # libraries made before keep their versions
    assert version_of(h, 120, 20) == version_of(h, 120, 20) != h
    assert len({version_of(h, 120, 20), version_of(h, 120, 30), version_of(h, 300, 20)}) == 3


def test_files_whose_reader_improved_get_a_new_version_and_others_keep_theirs(tmp_path, embedder):
    from app.core.documents import reader_revision

    assert reader_revision("notes.md", "text") and reader_revision("page.htm", "html")
    assert reader_revision("notes.txt", "text") == "" == reader_revision("a.pdf", "pdf")
    h = "cd" * 32
    assert version_of(h, *FIRST_CUT, reader_revision("notes.md", "text")) != h
    # A library made before the reader changed: its Markdown is read again, its text is not.
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("# Guide\n\nThe **gate** code is `K-19`.\n", encoding="utf-8")
    (docs / "plain.txt").write_text("The lobby opens at seven.\n", encoding="utf-8")
    (tmp_path / "home").mkdir()
    lib = Library(tmp_path / "home", vector_process=False)
    list(Ingestor(lib, embedder, IngestOptions()).run([str(docs)], CancelToken()))
    for path in docs.iterdir():  # as the old code stored them: the bare hash
        doc = lib.document(str(path))
        lib._db.execute("UPDATE documents SET hash=? WHERE id=?", (file_hash(path), doc.id))
        lib._db.execute("UPDATE chunks SET version=? WHERE doc_id=?", (file_hash(path), doc.id))
    events = list(Ingestor(lib, embedder, IngestOptions()).run([str(docs)], CancelToken()))
    status = {Path(e.path).name: e.status for e in events if isinstance(e, FileDone)}
    assert status == {"guide.md": "replaced", "plain.txt": "unchanged"}
    lib.close()


def test_a_new_passage_size_recuts_each_document_in_turn_searchable_throughout(tmp_path, embedder):
    docs = _docs(tmp_path / "docs")
    smaller = IngestOptions(chunk_tokens=24, chunk_overlap=4)
    (tmp_path / "reference").mkdir()
    ref = Library(tmp_path / "reference")
    list(Ingestor(ref, embedder, smaller).run([str(docs)], CancelToken()))
    want = _by_name(live_ids(ref))
    ref.close()

    home = tmp_path / "home"
    home.mkdir()
    lib = Library(home)
    list(Ingestor(lib, embedder, ingest_queue=IngestQueue(home)).run([str(docs)], CancelToken()))
    old = _by_name(live_ids(lib))
    assert set(old) == set(want) and all(old[n] != want[n] for n in old)

    recut = Ingestor(lib, embedder, smaller, ingest_queue=IngestQueue(home))
    closing = CancelToken()
    statuses = []
    for event in recut.run(recut.start_reindex(), closing):
        if isinstance(event, FileDone):
            statuses.append(event.status)
            live = live_ids(lib)  # every document stays searchable, old cut or new
            assert len(live) == 4 and all(live.values())
            assert lib.keyword_search("archive room caretaker", 5)
            closing.cancel()  # the app closes after the first document
    assert statuses[0] == "replaced" and set(statuses[1:]) <= {"cancelled"}  # one in flight
    middle = _by_name(live_ids(lib))
    assert sorted(n for n in middle if middle[n] == want[n]) == ["minutes 0.pdf"]
    assert sorted(n for n in middle if middle[n] == old[n]) == [
        "minutes 1.pdf",
        "minutes 2.pdf",
        "notes.txt",
    ]
    lib.close()

    lib = Library(home)  # the next start finishes the re-cut
    again = Ingestor(lib, embedder, smaller, ingest_queue=IngestQueue(home))
    list(again.run(again.resumable(), CancelToken()))
    assert _by_name(live_ids(lib)) == want
    assert lib.verify() == [] and again.resumable() == []
    lib.close()
