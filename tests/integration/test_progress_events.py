"""What the window's estimate of time left is built from: the run's bytes, each file's size, and
a PDF's page count once its reader knows it (app/gui/ingest_progress.py turns them into words)."""

from __future__ import annotations

import pytest

from app.core.cancel import CancelToken
from app.core.events import FileProgress, FileStarted, IngestStarted
from app.core.ingest import IngestOptions, Ingestor
from app.core.library import Library
from tests.pdfmaker import make_pdf

pytestmark = pytest.mark.slow


def test_events_carry_the_work_ahead(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    pdf = make_pdf(
        docs / "manual.pdf",
        [
            f"Chapter {i}: the pump needs service every {i * 10} hours of running."
            for i in range(40)
        ],
    )
    note = docs / "note.txt"
    note.write_text("The office opens at nine.\n", encoding="utf-8")
    (tmp_path / "home").mkdir()
    library = Library(tmp_path / "home")
    try:
        ingestor = Ingestor(library, embedder, IngestOptions(embed_window=8))
        events = list(ingestor.run([str(docs)], CancelToken()))
    finally:
        library.close()
    started = next(e for e in events if isinstance(e, IngestStarted))
    assert started.bytes == pdf.stat().st_size + note.stat().st_size
    sizes = {e.path: e.size for e in events if isinstance(e, FileStarted)}
    assert sizes == {str(pdf): pdf.stat().st_size, str(note): note.stat().st_size}
    progress = [e for e in events if isinstance(e, FileProgress) and e.path == str(pdf)]
    assert progress and {e.page_total for e in progress} == {40}  # known from the first batch
    assert progress[-1].pages == 40
    assert all(
        e.page_total == 0 for e in events if isinstance(e, FileProgress) and e.path == str(note)
    )
