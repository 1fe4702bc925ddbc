"""PDF text extraction (and chunking) in a worker process, streamed back a few pages at a time.

A PDF parser runs on the file's bytes, whoever made them: PDFium is C++ (a crash or a runaway page
must not take the window down with it) and pypdf, its second reader, is pure Python that holds the
GIL for ~17-40 ms a page, stalling the embedder's thread between torch ops (measured in
app/bench/NOTES.md). One worker process (spawned: it imports the PDF readers and
app.core.documents, never torch) reads the pages while this process embeds. The worker opens one
document at a time and hands back `batch` pages per call; at most two calls are in flight, so
memory stays bounded whatever the file's size. Given a Chunker, the worker also cuts the pages
into chunks (tokenizing them with the embedder's Rust tokenizer), so the ingesting process gets
chunks with their token ids and spends none of its GIL on tokenizing (app/bench/NOTES.md).

The path crosses to the worker as the str it is (pickle keeps a name's undecodable bytes, held
as surrogates, and the readers open such a name); messages show those bytes escaped.

Errors keep their meaning: the loader's DocumentError subclasses cross the process boundary
as they are. A worker that dies (a parser crash) fails only the file it was reading; the next
file gets a fresh worker. Where no process can be started, pages are read in the calling thread.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from app.core.chunking import Chunk, Chunker
from app.core.documents import CorruptDocument, Page, read_pages
from app.core.paths import display

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the worker process side
class _ReadAhead:
    """A document's pages, read by a thread of the worker while the pages before them are
    chunked: PDFium and the tokenizer both let go of the GIL, so over the benchmark corpus
    reading (4.5 s) and chunking (1.3 s on 16 cores) overlap instead of adding up."""

    def __init__(self, pages: Iterator[Page], depth: int = 32) -> None:
        self._pages = pages
        self._queue: queue.Queue = queue.Queue(maxsize=depth)  # bounds memory
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for page in self._pages:
                if not self._put(page):
                    return
            self._put(_END)
        except BaseException as exc:  # raised to the parent in page order, by take()
            self._put(_Failed(exc))
        finally:
            close = getattr(self._pages, "close", None)
            if close is not None:
                close()  # the document is closed by the thread that used it

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def take(self, n: int) -> tuple[list[Page], bool]:
        """Up to n pages, and whether the document is finished; a reading error is raised
        after the pages read before it."""
        pages: list[Page] = []
        while len(pages) < n:
            item = self._queue.get()
            if item is _END:
                return pages, True
            if isinstance(item, _Failed):
                raise item.error
            pages.append(item)
        return pages, False

    def stop(self, wait: bool = True) -> None:
        """Stop reading; `wait` for the thread to leave (it finishes the page it is on)."""
        self._stop.set()
        if wait:
            self._thread.join()


_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_open_doc: _ReadAhead | None = None
_chunker: Chunker | None = None  # set once per worker (its tokenizer is ~0.5 MB of JSON)
_chunking = False  # whether the open document is returned as chunks


_PARENT_POLL_S = 1.0


def _worker_init(parent: int, chunker: Chunker | None) -> None:
    global _chunker
    # This spawned process never forks, so the tokenizer's own threads are safe here; they are
    # worth having only where cores are spare: chunking the benchmark corpus took 4.2 s on one
    # core and 1.3 s on 16, while on 2 cores the embedder needs both.
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if (os.cpu_count() or 1) > 2 else "false"
    _chunker = chunker
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:  # pragma: no cover - runs in the worker
    """A pool worker waits on a queue whose write end it holds itself, so it never sees its
    parent die (a SIGKILLed window left one behind for good): leave when the parent is gone.
    `parent` comes from the parent itself: one killed before this worker started is gone already."""
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL_S)
    os._exit(0)


def _open(path: str, chunking: bool = False) -> None:
    global _open_doc, _chunking
    if _open_doc is not None:  # the last document was abandoned midway
        _open_doc.stop()
    _open_doc, _chunking = _ReadAhead(read_pages(path)), chunking


def _next(n: int) -> tuple[list[Page] | list[Chunk], int, bool]:
    """Up to n pages of the open document (or their chunks, given a chunker), how many pages
    that was, and whether the document is finished."""
    global _open_doc
    if _open_doc is None:
        return [], 0, True
    try:
        pages, done = _open_doc.take(n)
        out = list(_chunker.chunks(pages)) if _chunking and _chunker is not None else pages
    except BaseException:
        _open_doc.stop(wait=False)  # chunking failed: the reader thread must not wait forever
        _open_doc = None
        raise
    if done:
        _open_doc = None
    return out, len(pages), done


def chunk_batches(
    pages: Iterable[Page], chunker: Chunker, batch: int = 16
) -> Iterator[tuple[list[Chunk], int]]:
    """(chunks, pages read) per `batch` pages: what PageReader.chunks yields, in this thread."""
    it = iter(pages)
    while group := list(itertools.islice(it, batch)):
        yield list(chunker.chunks(group)), len(group)


# ------------------------------------------------------------------ the ingesting side
class PageReader:
    """Reads a PDF's pages in a worker process. One user (thread) at a time; close() when done."""

    def __init__(
        self, batch: int = 16, use_process: bool = True, chunker: Chunker | None = None
    ) -> None:
        """`chunker`: how chunks() cuts pages (sent to the worker once, when it starts)."""
        self.batch = batch
        self.chunker = chunker
        self.use_process = use_process and (os.cpu_count() or 1) > 1
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor | None:
        if self._executor is None and self.use_process:
            try:
                self._executor = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_worker_init,
                    initargs=(os.getpid(), self.chunker),
                )
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("no extraction process (%s); reading PDFs in-process", exc)
                self.use_process = False
        return self._executor

    def pages(self, path: str | os.PathLike[str]) -> Iterator[Page]:
        """The PDF's pages, in order, as read_pages(path) would yield them."""
        if self._pool() is None:
            yield from read_pages(path)
            return
        for pages, _n in self._stream(path, chunking=False):
            yield from pages

    def chunks(self, path: str | os.PathLike[str]) -> Iterator[tuple[list[Chunk], int]]:
        """The PDF's chunks, cut by the worker: (chunks, pages read) per batch of pages."""
        if self.chunker is None:
            raise ValueError("PageReader.chunks needs the chunker it was made with")
        if self._pool() is None:
            yield from chunk_batches(read_pages(path), self.chunker, self.batch)
            return
        yield from self._stream(path, chunking=True)

    def _stream(self, path, chunking: bool) -> Iterator[tuple[list, int]]:
        pool = self._pool()
        assert pool is not None
        try:
            pending: Future = pool.submit(_open, str(path), chunking)
            pending.result()
            pending = pool.submit(_next, self.batch)
            while True:
                got, n, done = pending.result()
                if not done:  # let the worker read the next pages while these are embedded
                    pending = pool.submit(_next, self.batch)
                yield got, n
                if done:
                    return
        except BrokenProcessPool as exc:
            self._discard()
            raise CorruptDocument(
                f"'{display(os.path.basename(path))}' could not be read: the PDF reader stopped "
                "while reading it. Open it in a PDF reader, save or print it to a new PDF, and add "
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
