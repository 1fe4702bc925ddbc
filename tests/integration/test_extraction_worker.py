"""The PDF worker process: the same pages as reading in-process, and no orphan left behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from app.core.chunking import Chunker, PageTokenizer
from app.core.documents import CorruptDocument, Page, read_pages
from app.core.extraction import PageReader, _ReadAhead, chunk_batches
from tests.pdfmaker import make_pdf

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PAGES = [f"Page {n} of the staff handbook: rule {n * 7}." for n in range(1, 40)]


def test_the_worker_reads_what_the_reader_reads(tmp_path):
    pdf = make_pdf(tmp_path / "handbook.pdf", PAGES, [(0, "Rules", 3)])
    reader = PageReader(batch=5)
    try:
        assert list(reader.pages(pdf)) == list(read_pages(pdf))  # headings included
        assert reader._executor is not None  # it did run in a worker process
    finally:
        reader.close()


def test_the_worker_chunks_as_this_process_would(tmp_path, embedder):
    pdf = make_pdf(tmp_path / "handbook.pdf", PAGES, [(0, "Rules", 3)])
    chunker = Chunker(PageTokenizer.of(embedder.tokenizer), max_tokens=8, overlap=2)
    reader = PageReader(batch=5, chunker=chunker)
    try:
        batches = list(reader.chunks(pdf))
        assert reader._executor is not None
    finally:
        reader.close()
    local = list(chunk_batches(read_pages(pdf), chunker, 5))
    assert [n for _c, n in batches] == [5] * 7 + [4]  # pages read, counted per batch
    assert batches == local
    chunks = [c for got, _n in batches for c in got]
    assert {c.page for c in chunks} == set(range(1, 40))
    assert all(c.ids for c in chunks)


def test_the_worker_leaves_when_its_parent_is_killed(tmp_path):
    pdf = make_pdf(tmp_path / "handbook.pdf", PAGES)
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from app.core.extraction import PageReader
        reader = PageReader(batch=1)
        pages = reader.pages({str(pdf)!r})
        next(pages)
        (worker,) = reader._executor._processes
        print(worker, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "w") as stdout, open(err, "w") as stderr:  # a pipe would wait for the worker
        done = subprocess.run([sys.executable, "-c", script], stdout=stdout, stderr=stderr)
    assert done.returncode == -9, err.read_text()
    worker = int(out.read_text().split()[0])
    deadline = time.monotonic() + 15
    while psutil.pid_exists(worker) and time.monotonic() < deadline:
        try:
            if psutil.Process(worker).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    alive = psutil.pid_exists(worker) and psutil.Process(worker).status() != psutil.STATUS_ZOMBIE
    if alive:  # leave nothing behind, then fail
        os.kill(worker, 9)
    assert not alive, "the PDF worker outlived its killed parent"


def _pages(n, closed, fail_at=None):
    try:
        for i in range(1, n + 1):
            if i == fail_at:
                raise CorruptDocument(f"page {i} is damaged")
            yield Page(i, f"text of page {i}")
    finally:
        closed.append(True)


def test_read_ahead_keeps_page_order_and_raises_an_error_where_it_happened():
    closed = []
    ahead = _ReadAhead(_pages(7, closed, fail_at=6), depth=2)
    assert [p.number for p in ahead.take(3)[0]] == [1, 2, 3]
    with pytest.raises(CorruptDocument, match="page 6"):
        ahead.take(3)  # pages 4 and 5 come first, then the error
    assert closed == [True]


def test_read_ahead_stopped_midway_closes_its_document():
    closed = []
    ahead = _ReadAhead(_pages(1000, closed), depth=4)
    pages, done = ahead.take(2)
    assert [p.number for p in pages] == [1, 2] and not done
    ahead.stop()  # the reading thread was waiting on a full queue
    assert closed == [True] and not ahead._thread.is_alive()
    whole = _ReadAhead(_pages(3, []), depth=1)
    assert whole.take(10)[1] is True  # finished
