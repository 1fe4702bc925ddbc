"""PDF text extraction (and chunking) in a worker process, streamed back a few pages at a time.

A PDF parser runs on the file's bytes, whoever made them: PDFium is C++ (a crash or a runaway page
must not take the window down with it) and pypdf, its second reader, is pure Python that holds the
GIL for tens of milliseconds a page, stalling the embedder's thread between torch ops (measured
in bench/NOTES.md). One worker process (spawned: it imports the PDF readers and
app.core.documents, never torch) reads the pages while this process embeds. The worker opens one
document at a time and hands back `batch` pages per call; at most two calls are in flight, so
memory stays bounded whatever the file's size. Given a Chunker, the worker also cuts the pages
into chunks (tokenizing them with the embedder's Rust tokenizer), so the ingesting process gets
chunks with their token ids and spends none of its GIL on tokenizing (bench/NOTES.md).

The path crosses to the worker as the str it is (pickle keeps a name's undecodable bytes, held
as surrogates, and the readers open such a name); messages show those bytes escaped.

Errors keep their meaning: the loader's DocumentError subclasses cross the process boundary
as they are. A worker that dies (a parser crash) fails only the file it was reading; the next
file gets a fresh worker. Where no process can be started, pages are read in the calling thread.

A file is only bytes on disk until a parser unpacks it: a 1 MB PDF whose page content inflates
to 1 GB took PDFium to 2 GB, a 3 MB one past 4.6 GB. So a watchdog thread of the ingesting side
watches the worker while it reads a file: past `rss_limit` of resident memory, or a call that
has not returned after `call_seconds`, the worker is killed and the file fails with a message
that says which limit it hit and what to do; the next file gets a fresh worker. (An
address-space limit in the worker would not do: PDFium aborts the process when an allocation
fails, so it would turn the same file into a crash, and thread arenas make the address space
of a healthy worker hard to predict.)
"""

from __future__ import annotations

import contextlib
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

# What one file may cost the worker. Reading the R manuals and the office set it stays within a
# fifth of this; the rest of the app (embedder, Chroma's process) fits beside it under 2 GiB.
WORKER_RSS_LIMIT = 512 * 2**20
# Text out of a file is rarely more than its size on disk (PDF text is a small part of its
# content streams, themselves compressed 3-5x): past its first million characters, a file that
# gives this many times its size in text was built to expand, and would keep the embedder busy
# for hours; it fails instead.
TEXT_RATIO = 100
TEXT_FLOOR = 1_000_000
CALL_SECONDS = 60.0  # one batch of pages (16) that takes longer is a parser gone astray
WATCH_INTERVAL_S = 0.05

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the worker process side
class _ReadAhead:
    """A document's pages, read by a thread of the worker while the pages before them are
    chunked: PDFium and the tokenizer both let go of the GIL, so reading and chunking overlap
    instead of adding up (bench/NOTES.md)."""

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
_open_path = ""
_text_budget = 0  # characters the open document may still give (TEXT_RATIO)
_chunker: Chunker | None = None  # set once per worker (its tokenizer is ~0.5 MB of JSON)
_chunking = False  # whether the open document is returned as chunks


_PARENT_POLL_S = 1.0


def _worker_init(parent: int, chunker: Chunker | None) -> None:
    global _chunker
    # This spawned process never forks, so the tokenizer's own threads are safe here; they are
    # worth having only where cores are spare (bench/NOTES.md): on 2 cores the embedder needs
    # both.
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
    global _open_doc, _chunking, _open_path, _text_budget
    if _open_doc is not None:  # the last document was abandoned midway
        _open_doc.stop()
    try:
        size = os.stat(path).st_size
    except OSError:
        size = 0  # read_pages says what is wrong with it
    _open_path, _text_budget = path, max(TEXT_FLOOR, TEXT_RATIO * size)
    _open_doc, _chunking = _ReadAhead(read_pages(path)), chunking


def _next(n: int) -> tuple[list[Page] | list[Chunk], int, bool, int]:
    """Up to n pages of the open document (or their chunks, given a chunker), how many pages
    that was, whether the document is finished, and its page count (0: not known)."""
    global _open_doc, _text_budget
    if _open_doc is None:
        return [], 0, True, 0
    try:
        pages, done = _open_doc.take(n)
        _text_budget -= sum(len(page.text) for page in pages)
        of = max((page.of for page in pages), default=0)
        if _text_budget < 0:
            raise _too_much_text(_open_path)
        out = list(_chunker.chunks(pages)) if _chunking and _chunker is not None else pages
    except BaseException:
        _open_doc.stop(wait=False)  # chunking failed: the reader thread must not wait forever
        _open_doc = None
        raise
    if done:
        _open_doc = None
    return out, len(pages), done, of


def _too_much_text(path: str) -> CorruptDocument:
    return CorruptDocument(
        f"'{display(os.path.basename(path))}' could not be read: it expands to far more text "
        f"than its size on disk holds (over {TEXT_RATIO} times), so it may be built to fill "
        "memory and time. If it is a real document, split it into smaller files, and add those."
    )


def chunk_batches(
    pages: Iterable[Page], chunker: Chunker, batch: int = 16
) -> Iterator[tuple[list[Chunk], int]]:
    """(chunks, pages read) per `batch` pages: what PageReader.chunks yields, in this thread."""
    it = iter(pages)
    while group := list(itertools.islice(it, batch)):
        yield list(chunker.chunks(group)), len(group)


# ------------------------------------------------------------------ the ingesting side
class _Watchdog:
    """Watches the worker while it reads a file: kills it past the memory or time limit and
    remembers why, for the message (see the module's docstring)."""

    def __init__(self, rss_limit: int, call_seconds: float) -> None:
        self.rss_limit = rss_limit
        self.call_seconds = call_seconds
        self.peak = 0  # the worker's largest resident size seen (for the bench and tests)
        self.last = 0  # its resident size at the last look
        self.reason: str | None = None  # "memory" or "time", once it killed the worker
        self._lock = threading.Lock()
        self._processes: dict = {}
        self._pending: tuple[Future | None, float] = (None, 0.0)  # the call, when it was made
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    def begin(self) -> None:
        """A file is about to be read."""
        self.reason, self.last = None, 0

    def watch(self, processes: dict) -> None:
        """Watch the worker(s) in `processes` (the pool's own pid -> Process dict)."""
        with self._lock:
            self._processes = processes
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="confidant-extraction-watchdog", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def call(self, future: Future) -> None:
        """A call was made to the worker now; it is timed until it is done."""
        self._pending = (future, time.monotonic())

    def release(self) -> None:
        """No file is being read: an idle worker is left alone."""
        with self._lock:
            self._processes = {}
            self._pending = (None, 0.0)

    def close(self) -> None:
        self._closed = True
        self.release()
        self._wake.set()

    def _run(self) -> None:
        import psutil

        watched: dict[int, psutil.Process] = {}
        while not self._closed:
            self._wake.clear()  # before looking: a watch() from now on wakes the wait below
            with self._lock:
                processes = dict(self._processes)
            if not processes:
                watched.clear()
                self._wake.wait(1.0)
                continue
            for pid, proc in processes.items():
                try:
                    ps = watched.get(pid) or watched.setdefault(pid, psutil.Process(pid))
                    rss = ps.memory_info().rss
                except (psutil.Error, OSError, ValueError):
                    continue  # starting or gone: the pool notices a dead worker itself
                self.last, self.peak = rss, max(self.peak, rss)
                future, since = self._pending
                reason = None
                if rss > self.rss_limit:
                    reason = "memory"
                elif (
                    future is not None
                    and not future.done()
                    and time.monotonic() - since > self.call_seconds
                ):
                    reason = "time"
                if reason is not None:
                    with self._lock:
                        self.reason = reason
                        self._processes = {}
                    log.warning("extraction worker %d killed: %s limit", pid, reason)
                    with contextlib.suppress(Exception):
                        proc.kill()
            time.sleep(WATCH_INTERVAL_S)


class PageReader:
    """Reads a document's pages in a worker process. One user (thread) at a time; close() when
    done."""

    def __init__(
        self,
        batch: int = 16,
        use_process: bool = True,
        chunker: Chunker | None = None,
        rss_limit: int = WORKER_RSS_LIMIT,
        call_seconds: float = CALL_SECONDS,
    ) -> None:
        """`chunker`: how chunks() cuts pages (sent to the worker once, when it starts).
        `rss_limit`, `call_seconds`: what reading one file may cost the worker."""
        self.batch = batch
        self.chunker = chunker
        # The worker is also what bounds a hostile file's memory and time, so it is used
        # wherever a process can be started, one core included.
        self.use_process = use_process
        self._executor: ProcessPoolExecutor | None = None
        self._watchdog = _Watchdog(rss_limit, call_seconds)
        self.page_total = 0  # pages of the document being streamed, once the worker knows

    @property
    def worker_peak_rss(self) -> int:
        """The largest resident size the worker was seen at while reading a file."""
        return self._watchdog.peak

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
        """The document's pages, in order, as read_pages(path) would yield them."""
        if self._pool() is None:
            yield from read_pages(path)
            return
        for pages, _n in self._stream(path, chunking=False):
            yield from pages

    def chunks(self, path: str | os.PathLike[str]) -> Iterator[tuple[list[Chunk], int]]:
        """The document's chunks, cut by the worker: (chunks, pages read) per batch of pages."""
        if self.chunker is None:
            raise ValueError("PageReader.chunks needs the chunker it was made with")
        if self._pool() is None:
            yield from chunk_batches(read_pages(path), self.chunker, self.batch)
            return
        yield from self._stream(path, chunking=True)

    def _submit(self, pool: ProcessPoolExecutor, fn, *args) -> Future:
        future = pool.submit(fn, *args)
        # the pool starts its worker on the first submit: watch it from then on
        self._watchdog.watch(getattr(pool, "_processes", None) or {})
        self._watchdog.call(future)
        return future

    def _stream(self, path, chunking: bool) -> Iterator[tuple[list, int]]:
        if self._executor is not None and getattr(self._executor, "_broken", False):
            self._discard()  # killed after its last file ended: this file gets a fresh one
        pool = self._pool()
        assert pool is not None
        self.page_total = 0
        self._watchdog.begin()
        finished = False
        try:
            pending: Future = self._submit(pool, _open, str(path), chunking)
            pending.result()
            pending = self._submit(pool, _next, self.batch)
            while True:
                got, n, done, of = pending.result()
                self.page_total = of or self.page_total
                if not done:  # let the worker read the next pages while these are embedded
                    pending = self._submit(pool, _next, self.batch)
                else:
                    finished = True
                yield got, n
                if done:
                    return
        except BrokenProcessPool as exc:
            reason = self._watchdog.reason
            self._discard()
            raise _stopped(path, reason, self._watchdog) from exc
        except Exception:
            finished = True  # the worker raised it, and let go of the document
            raise
        finally:
            self._watchdog.release()
            # A file left midway would go on being read, unwatched; memory a large file left
            # behind is not the next file's to count: either way the next file gets a fresh
            # worker.
            if not finished or self._watchdog.last > self._watchdog.rss_limit // 2:
                self._discard()

    def _discard(self) -> list:
        """Let the worker go now, without waiting for it (it may be deep in a large page)."""
        executor, self._executor = self._executor, None
        if executor is None:
            return []
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            with contextlib.suppress(Exception):
                if proc.is_alive():
                    proc.terminate()
        return processes

    def close(self) -> None:
        """Stop the worker (an unfinished document is abandoned)."""
        self._watchdog.close()
        for proc in self._discard():
            proc.join(5)


def _stopped(path, reason: str | None, watchdog: _Watchdog) -> CorruptDocument:
    """The message for a file whose reader process was killed or died."""
    name = f"'{display(os.path.basename(path))}'"
    pdf = os.fspath(path).lower().endswith(".pdf")
    fix = (
        "Open it in a PDF reader, print it to a new PDF or split it into smaller files, and "
        "add those instead."
        if pdf
        else "Open it in its own program, save it again or split it into smaller files, and "
        "add those instead."
    )
    if reason == "memory":
        return CorruptDocument(
            f"{name} could not be read: reading it needed more than "
            f"{watchdog.rss_limit // 2**20} MB of memory, far more than a file of its size "
            f"should (part of it expands enormously when unpacked, or it was built to fill "
            f"memory). {fix}"
        )
    if reason == "time":
        return CorruptDocument(
            f"{name} could not be read: a part of it took longer than "
            f"{watchdog.call_seconds:g} s to read, so reading was stopped (its content is far "
            f"too complex, or damaged). {fix}"
        )
    reader = "PDF reader" if pdf else "document reader"
    return CorruptDocument(
        f"{name} could not be read: the {reader} stopped while reading it. {fix}"
    )
