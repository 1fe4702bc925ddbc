"""The ingestion estimate counts work (bytes, and pages in the file being read), not files."""

from __future__ import annotations

from app.core.events import FileDone, FileProgress, FileStarted, IngestStarted
from app.gui.ingest_progress import IngestProgress, duration

MB = 1 << 20


def _six_files(p: IngestProgress) -> None:
    """A 2,400-page manual (30 MB) and five short memos (20 KB each)."""
    p.update(IngestStarted(total=6, bytes=30 * MB + 5 * 20_000))
    for i in range(5):
        path = f"/docs/memo{i}.docx"
        p.update(FileStarted(path, i, 6, 20_000))
        p.update(FileDone(path, "added", chunks=3, pages=1))


def test_a_big_file_is_most_of_the_work():
    p = IngestProgress(started=0.0)
    _six_files(p)
    p.update(FileStarted("/docs/refman.pdf", 5, 6, 30 * MB))
    p.update(FileProgress("/docs/refman.pdf", "embedding", 24, 200, page_total=2400))
    # Five of six files are done, but 1% of the work: no "under a minute left".
    assert p.fraction() < 0.02
    assert p.seconds_left(now=60.0) is None
    text = p.text(now=60.0)
    assert "Adding 6 of 6 documents" in text and "page 24 of 2,400" in text
    assert "left" not in text

    p.update(FileProgress("/docs/refman.pdf", "embedding", 600, 5000, page_total=2400))
    left = p.seconds_left(now=120.0)
    assert left is not None and 330 < left < 370  # a quarter done in 2 minutes: 6 more
    assert "about 6 min left" in p.text(now=120.0)


def test_no_estimate_in_the_first_seconds_or_without_bytes():
    p = IngestProgress(started=0.0)
    p.update(IngestStarted(total=2, bytes=2000))
    p.update(FileStarted("/a.txt", 0, 2, 1000))
    p.update(FileDone("/a.txt", "added"))
    assert p.fraction() == 0.5
    assert p.seconds_left(now=2.0) is None
    assert p.seconds_left(now=10.0) == 10.0

    q = IngestProgress(started=0.0)  # sizes unknown (an older event): counted by files
    q.update(IngestStarted(total=4))
    q.update(FileDone("/x", "failed"))
    assert q.fraction() == 0.25 and q.counts == {"failed": 1}


def test_bar_and_words():
    p = IngestProgress(started=0.0)
    assert p.bar() == (0, 0) and p.text() == "Looking for documents…"
    p.update(IngestStarted(total=1, bytes=100))
    p.update(FileStarted("/a.pdf", 0, 1, 100))
    p.update(FileProgress("/a.pdf", "embedding", 5, 9, page_total=10))
    assert p.bar() == (500, 1000)
    p.resuming = True
    assert p.text(now=1.0).startswith("Resuming 1 of 1 document ·")
    assert duration(30) == "less than a minute" and duration(30, short=True) == "under a minute"
    assert duration(600, short=True) == "about 10 min" and duration(7200) == "about 2 hours"
