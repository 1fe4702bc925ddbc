"""PDF text extraction in a worker process, streamed back a few pages at a time.

A PDF parser runs on the file's bytes, whoever made them: PDFium is C++ (a crash or a runaway page
must not take the window down with it) and pypdf, its second reader, is pure Python that holds the
GIL for ~17-40 ms a page, stalling the embedder's thread between torch ops (measured in
app/bench/NOTES.md). One worker process (spawned: it imports the PDF readers and
app.core.documents, never torch) reads the pages while this process embeds. The worker opens one
document at a time and hands back `batch` pages per call; at most two calls are in flight, so
memory stays bounded whatever the file's size.

Errors keep their meaning: the loader's DocumentError subclasses cross the process boundary
as they are. A worker that dies (a parser crash) fails only the file it was reading; the next
file gets a fresh worker. Where no process can be started, pages are read in the calling thread.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from app.core.documents import CorruptDocument, Page, read_pages

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ the worker process side
_open_doc: Iterator[Page] | None = None


_PARENT_POLL_S = 1.0


def _worker_init(parent: int) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:  # pragma: no cover - runs in the worker
    """A pool worker waits on a queue whose write end it holds itself, so it never sees its
    parent die (a SIGKILLed window left one behind for good): leave when the parent is gone.
    `parent` comes from the parent itself: one killed before this worker started is gone already."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(0)


def _open(path: str) -> None:
    global _open_doc
    _open_doc = read_pages(path)


def _next(n: int) -> tuple[list[Page], bool]:
    """Up to n pages of the open document, and whether it is finished."""
    global _open_doc
    if _open_doc is None:
        return [], True
    out: list[Page] = []
    try:
        for page in _open_doc:
            out.append(page)
            if len(out) >= n:
                return out, False
    except BaseException:
        _open_doc = None
        raise
    _open_doc = None
    return out, True


# ------------------------------------------------------------------ the ingesting side
class PageReader:
    """Reads a PDF's pages in a worker process. One user (thread) at a time; close() when done."""

    def __init__(self, batch: int = 16, use_process: bool = True) -> None:
        self.batch = batch
        self.use_process = use_process and (os.cpu_count() or 1) > 1
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor | None:
        if self._executor is None and self.use_process:
            try:
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(os.getpid(),),
                )
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("no extraction process (%s); reading PDFs in-process", exc)
                self.use_process = False
        return self._executor

    def pages(self, path: str | os.PathLike[str]) -> Iterator[Page]:
        """The PDF's pages, in order, as read_pages(path) would yield them."""
        pool = self._pool()
        if pool is None:
            yield from read_pages(path)
            return
        try:
            pending: Future = pool.submit(_open, str(path))
            pending.result()
            pending = pool.submit(_next, self.batch)
            while True:
                got, done = pending.result()
                if not done:  # let the worker read the next pages while these are chunked
                    pending = pool.submit(_next, self.batch)
                yield from got
                if done:
                    return
        except BrokenProcessPool as exc:
            self._discard()
            raise CorruptDocument(
                f"'{os.path.basename(path)}' could not be read: the PDF reader stopped while "
                "reading it. Open it in a PDF reader, save or print it to a new PDF, and add "
                "that copy instead."
            ) from exc

    def _discard(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def close(self) -> None:
        """Stop the worker (an unfinished document is abandoned)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for proc in processes:  # it may be deep in a large page: do not wait for it
            if proc.is_alive():
                proc.terminate()
        for proc in processes:
            proc.join(5)
