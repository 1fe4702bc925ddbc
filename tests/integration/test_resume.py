"""Nothing asked for is forgotten: a run stopped by a closing window, or a re-index cut short,
is finished by the next start (Ingestor.resumable), through the real embedder and Chroma, and
ends with the same chunks as a run that was never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.cancel import CancelToken
from app.core.events import FileDone
from app.core.ingest import Ingestor
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
