"""Ingestion: files -> pages -> chunks -> vectors -> the library, as a generator of events.

Two stages overlap: a reader thread hashes, sniffs, extracts and chunks files (PDFs are read and
chunked in a worker process, extraction.py), while the caller's thread embeds chunks, from the
token ids the chunker made, in batches that span files (so a folder of small files still fills
each batch) and writes them. A file's new version becomes
live only when all its chunks are stored (see library.py), so cancelling or crashing at any point
loses nothing already ingested; the next run redoes only the files left unfinished.

One file never ends the run: whatever goes wrong while it is read (an unexpected exception
included) makes it "failed" with a message naming it, and the reader goes on with the next.
Paths are Python's surrogateescape str, so a name that is not valid UTF-8 is read like any
other; messages show it with its undecodable bytes escaped (paths.py). A file is read only
from a state that held still: its size, mtime and inode are compared before its hash and
after its last page, and a file that changed meanwhile is read again (READ_ATTEMPTS in all).
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from app.core.cancel import Cancelled, CancelToken
from app.core.chunking import Chunk, Chunker, PageTokenizer
from app.core.documents import (
    DocumentError,
    UnreadableFile,
    read_pages,
    reader_revision,
    sniff,
)
from app.core.embedding import Embedder, EmbedderError
from app.core.events import (
    FileDone,
    FileProgress,
    FileStarted,
    IngestEvent,
    IngestFinished,
    IngestStarted,
)
from app.core.extraction import PageReader, chunk_batches
from app.core.ingest_queue import IngestQueue
from app.core.library import ChunkRecord, Library
from app.core.paths import display
from app.core.status import DocStatus
from app.core.walk import expand

log = logging.getLogger(__name__)

HASH_BLOCK = 1 << 20
READ_ATTEMPTS = 3  # reads of a file that keeps changing while it is read, before it fails


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


FIRST_CUT = (200, 40)  # the passage size and overlap every library was cut with at first


def version_of(content_hash: str, chunk_tokens: int, chunk_overlap: int, reader: str = "") -> str:
    """A document version: its bytes, how they are cut into passages, and the revision of the
    reader that turned them into text. A new passage size (or a better reader) is then a new
    version of every file concerned, replaced one by one as if it had been edited, so the
    library stays searchable while it is re-cut (and a run cut short leaves each document whole,
    old cut or new). With the first cut and reader it is the bytes' hash alone, as libraries
    made before held it, so an update does not re-read them."""
    if (chunk_tokens, chunk_overlap) == FIRST_CUT and not reader:
        return content_hash
    cut = f"{content_hash} cut {chunk_tokens}/{chunk_overlap}"
    if reader:
        cut += f" reader {reader}"
    return hashlib.sha256(cut.encode()).hexdigest()


# Messages from the reader thread to the writer (the generator's thread).
@dataclass
class _Begin:
    i: int
    path: str
    version: str
    size: int
    mtime: float
    replacing: bool


@dataclass
class _Chunks:
    i: int
    chunks: list[Chunk]
    pages: int
    page_total: int = 0  # the document's pages, when its reader knows them (PDF)


@dataclass
class _End:
    i: int
    pages: int


@dataclass
class _Restart:
    """The file changed while it was read: drop what was sent of it; it is read again."""

    i: int


@dataclass
class _Outcome:
    """A file finished without writing (unchanged, skipped, or failed), or failed midway."""

    i: int
    path: str
    status: str
    error: str | None = None
    chunks: int = 0
    size: int = 0
    mtime: float = 0.0

    def __post_init__(self) -> None:
        # Loaders quote the file's name as it is: show its undecodable bytes escaped.
        if self.error is not None:
            self.error = display(self.error)


_DONE = object()
_CHANGED = object()  # what _read_version returns when the file changed while it was read


@dataclass
class _OpenFile:
    path: str
    doc_id: int
    version: str
    replacing: bool
    next_idx: int = 0
    pages: int = 0
    page_total: int = 0
    buffered: int = 0
    ended: bool = False
    size: int = 0
    mtime: float = 0.0


@dataclass
class IngestOptions:
    chunk_tokens: int = FIRST_CUT[0]
    chunk_overlap: int = FIRST_CUT[1]
    # chunks handed to the embedder at once (across files): it sorts them by length, so a
    # wider window pads its forward batches less (over the benchmark PDFs, 64 in one pass:
    # 18-24% of the tokens computed were padding; 256 in passes of 16: 3%). Stop is still
    # checked before each forward pass.
    embed_window: int = 256
    queue_size: int = 8  # windows of chunks read ahead of the embedder: bounds memory
    extract_in_process: bool = True  # PDF and Word files are parsed in a worker process


@dataclass
class _Run:
    counts: dict[str, int] = field(
        default_factory=lambda: {
            k: 0 for k in ("added", "unchanged", "replaced", "skipped", "failed", "cancelled")
        }
    )
    pages: int = 0
    chunks: int = 0
    stages: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(
            ("waiting", "embedding", "storing", "committing"), 0.0
        )
    )

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stages[stage] += time.perf_counter() - started


class Ingestor:
    """Adds files to a Library. One run at a time (the ingestion lane).

    It is the only owner of the ingest queue (ingest_queue.py), the requests not yet finished:
    queue() when a request is accepted, a run that ends takes its paths out, forget() when the
    user stops it or it is refused, pending() for what a start picks up. Without a queue (bench,
    tests) those do nothing.

    `library` and `embedder` may be given as functions that return them, called on first use:
    an Ingestor made only to queue a drop on the window's thread then opens neither there."""

    def __init__(
        self,
        library: Library | Callable[[], Library],
        embedder: Embedder | Callable[[], Embedder],
        options: IngestOptions | None = None,
        ingest_queue: IngestQueue | None = None,
    ):
        self._library_of = library if callable(library) else (lambda: library)
        self._embedder_of = embedder if callable(embedder) else (lambda: embedder)
        self._library: Library | None = None
        self._embedder: Embedder | None = None
        self.options = options or IngestOptions()
        self._queue = ingest_queue
        # The chunker is made for one embedder (its tokenizer) and kept while that one is used;
        # the page reader and the embedding window are set up by each run.
        self._chunker: Chunker | None = None
        self._chunker_of: Embedder | None = None
        self._page_reader: PageReader | None = None
        self._window = max(self.options.embed_window, 1)

    @property
    def library(self) -> Library:
        if self._library is None:
            self._library = self._library_of()
        return self._library

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._embedder_of()
        return self._embedder

    # ---------------------------------------------------------------- the requests
    def queue(self, paths: Iterable[str | os.PathLike]) -> None:
        """Accepted: kept until a run that reads them ends (a closed window, a crash or a
        power cut in between leaves them for the next start)."""
        if self._queue is not None:
            self._queue.add(paths)

    def forget(self, paths: Iterable[str | os.PathLike]) -> None:
        """Stopped on purpose or refused: not picked up again."""
        if self._queue is not None:
            self._queue.discard(paths)

    def forget_all(self) -> None:
        if self._queue is not None:
            self._queue.clear()

    def pending(self) -> list[str]:
        """The requests not finished yet, oldest first (paths that are gone included)."""
        return self._queue.paths() if self._queue is not None else []

    def start_reindex(self) -> list[str]:
        """Prepare a re-index; returns the paths to run. Vectors of another embedding model are
        forgotten first (two models' vectors cannot share a collection: the library is empty
        until the run ends). With the same model (a new passage size) nothing is forgotten:
        each document is replaced by its new cut as the run reaches it, searchable throughout.
        The paths are queued, so a run cut short is finished by the next start."""
        paths = [d.path for d in self.library.documents() if d.status != DocStatus.REMOVING]
        if self.library.embedder() not in (None, self.embedder.model_id):
            self.library.reset()
        self.queue(paths)
        return paths

    def resumable(self) -> list[str]:
        """What an earlier session asked for and did not finish: the queue's paths, then
        documents a re-index reset or a crash left half-done. Paths that no longer exist are
        left out (a file deleted since was not going to be added). Call it before run(), which
        reports the half-done ones as it cleans them up."""
        wanted = dict.fromkeys(self.pending() + self.library.unfinished())
        return [p for p in wanted if os.path.exists(p)]

    def run(self, paths: Sequence[str | os.PathLike], cancel: CancelToken) -> Iterator[IngestEvent]:
        started = time.perf_counter()
        self.library.check_embedder(self.embedder.model_id)
        interrupted = self.library.recover()
        files, problems = expand(paths)
        run = _Run()
        yield IngestStarted(
            total=len(files) + len(problems),
            interrupted=tuple(interrupted),
            bytes=sum(_size(f) for f in files),
        )
        for problem in problems:  # unreadable folders fail; links out, data folders are skipped
            run.counts[problem.status] += 1
            yield FileDone(problem.path, problem.status, error=display(problem.message))
        if files:
            yield from self._pipeline(files, cancel, run)
        if not cancel.cancelled:  # finished: out of the queue
            self.forget(paths)
        yield IngestFinished(
            counts=run.counts,
            seconds=time.perf_counter() - started,
            pages=run.pages,
            chunks=run.chunks,
            cancelled=cancel.cancelled,
            stages={k: round(v, 3) for k, v in run.stages.items()},
        )

    # ---------------------------------------------------------------- the writer side
    def _pipeline(self, files: list[Path], cancel: CancelToken, run: _Run) -> Iterator[IngestEvent]:
        messages: queue.Queue = queue.Queue(maxsize=self.options.queue_size)
        stop = threading.Event()
        reader = threading.Thread(
            target=self._read_all,
            args=(files, messages, stop),
            name="confidant-reader",
            daemon=True,
        )
        # Load the model here, before the reader needs its tokenizer. The chunker gets its own
        # copy of the tokenizer's core (never the one embed() uses on this thread: a Hugging
        # Face tokenizer keeps padding/truncation state per call, so sharing it races).
        if self._chunker_of is not self.embedder:
            tokenizer = PageTokenizer.of(self.embedder.tokenizer)
            if tokenizer is None:
                raise EmbedderError(
                    f"The embedding model at '{self.embedder.path}' has no fast tokenizer "
                    "(tokenizer.json), which Confidant needs to cut documents into chunks. "
                    "Choose a sentence-transformers model that has one in Settings."
                )
            max_tokens = min(self.options.chunk_tokens, self.embedder.max_tokens)
            self._chunker = Chunker(tokenizer, max_tokens, self.options.chunk_overlap)
            self._chunker_of = self.embedder
        self._page_reader = PageReader(
            use_process=self.options.extract_in_process, chunker=self._chunker
        )
        reader.start()
        open_files: dict[int, _OpenFile] = {}
        started: set[int] = set()  # files whose FileStarted went out (once, if read again)
        pending: list[tuple[int, Chunk]] = []
        try:
            while True:
                try:
                    with run.timed("waiting"):
                        msg = messages.get(timeout=0.1)
                except queue.Empty:
                    if cancel.cancelled:
                        raise Cancelled() from None
                    continue
                if cancel.cancelled:
                    raise Cancelled()
                if msg is _DONE:
                    break
                if isinstance(msg, _Begin):
                    doc_id = self.library.begin_version(msg.path, msg.version, msg.size, msg.mtime)
                    open_files[msg.i] = _OpenFile(
                        msg.path, doc_id, msg.version, msg.replacing, size=msg.size, mtime=msg.mtime
                    )
                    if msg.i not in started:
                        started.add(msg.i)
                        yield FileStarted(msg.path, msg.i, len(files), msg.size)
                elif isinstance(msg, _Chunks):
                    f = open_files[msg.i]
                    f.pages, f.page_total = msg.pages, msg.page_total
                    f.buffered += len(msg.chunks)
                    pending.extend((msg.i, c) for c in msg.chunks)
                    while len(pending) >= self._window:
                        yield from self._flush(pending[: self._window], open_files, run, cancel)
                        del pending[: self._window]
                        yield from self._commit_ended(open_files, run)
                        cancel.raise_if_cancelled()
                elif isinstance(msg, _End):
                    f = open_files[msg.i]
                    f.ended, f.pages = True, msg.pages
                    yield from self._commit_ended(open_files, run)
                elif isinstance(msg, _Restart):  # what was read of it is not the file's text
                    f = open_files.pop(msg.i)
                    pending[:] = [(i, c) for i, c in pending if i != msg.i]
                    self.library.abandon_version(f.doc_id, f.version, DocStatus.INTERRUPTED, None)
                elif isinstance(msg, _Outcome):
                    if msg.i in open_files:  # failed midway: drop its partial version
                        f = open_files.pop(msg.i)
                        pending[:] = [(i, c) for i, c in pending if i != msg.i]
                        self.library.abandon_version(f.doc_id, f.version, msg.status, msg.error)
                    elif msg.status in ("skipped", "failed"):
                        self.library.record_unreadable(
                            msg.path, msg.status, msg.error or "", msg.size, msg.mtime
                        )
                    if msg.status != "unchanged" and msg.i not in started:
                        started.add(msg.i)
                        yield FileStarted(msg.path, msg.i, len(files), msg.size)
                    run.counts[msg.status] += 1
                    yield FileDone(msg.path, msg.status, chunks=msg.chunks, error=msg.error)
                # Small files: embed what is waiting when the reader has nothing more right now.
                if pending and messages.empty():
                    yield from self._flush(pending, open_files, run, cancel)
                    pending.clear()
                    yield from self._commit_ended(open_files, run)
            if pending:
                yield from self._flush(pending, open_files, run, cancel)
                pending.clear()
            yield from self._commit_ended(open_files, run)
        except Cancelled:
            for f in open_files.values():
                self.library.abandon_version(
                    f.doc_id,
                    f.version,
                    DocStatus.CANCELLED,
                    "Adding was cancelled before it finished.",
                )
                run.counts["cancelled"] += 1
                yield FileDone(f.path, "cancelled", error="Cancelled before it finished.")
        finally:
            stop.set()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                try:
                    messages.get_nowait()
                except queue.Empty:
                    reader.join(0.05)
            self._page_reader.close()

    def _flush(
        self,
        batch: list[tuple[int, Chunk]],
        open_files: dict[int, _OpenFile],
        run: _Run,
        cancel: CancelToken,
    ) -> Iterator[IngestEvent]:
        live = [(i, c) for i, c in batch if i in open_files]
        if not live:
            return
        with run.timed("embedding"):
            vectors = self.embedder.embed_tokens(
                [c.ids for _, c in live], [c.embedded_text for _, c in live], cancel
            )
        by_file: dict[int, list[tuple[int, ChunkRecord]]] = {}
        for row, (i, c) in enumerate(live):
            f = open_files[i]
            by_file.setdefault(i, []).append(
                (row, ChunkRecord(f.next_idx, c.page, c.start, c.end, c.text))
            )
            f.next_idx += 1
            f.buffered -= 1
        for i, rows in by_file.items():
            f = open_files[i]
            with run.timed("storing"):
                self.library.add_chunks(
                    f.doc_id, f.version, [r for _, r in rows], vectors[[row for row, _ in rows]]
                )
            yield FileProgress(f.path, "embedding", f.pages, f.next_idx, f.page_total)

    def _commit_ended(self, open_files: dict[int, _OpenFile], run: _Run) -> Iterator[IngestEvent]:
        for i in [i for i, f in open_files.items() if f.ended and f.buffered == 0]:
            f = open_files.pop(i)
            if f.next_idx == 0:
                error = f"'{display(Path(f.path).name)}' has no text to read."
                self.library.abandon_version(f.doc_id, f.version, DocStatus.SKIPPED, error)
                run.counts["skipped"] += 1
                yield FileDone(f.path, "skipped", pages=f.pages, error=error)
                continue
            with run.timed("committing"):
                self.library.commit_version(f.doc_id, f.version, f.next_idx, f.pages)
                # The size and mtime the new version was read at: a sync compares them first.
                self.library.note_stat(f.doc_id, f.size, f.mtime)
            status = "replaced" if f.replacing else "added"
            run.counts[status] += 1
            run.pages += f.pages
            run.chunks += f.next_idx
            yield FileDone(f.path, status, chunks=f.next_idx, pages=f.pages)

    # ---------------------------------------------------------------- the reader thread
    def _read_all(self, files: list[Path], out: queue.Queue, stop: threading.Event) -> None:
        def put(msg) -> bool:
            while not stop.is_set():
                try:
                    out.put(msg, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for i, path in enumerate(files):
                if stop.is_set():
                    return
                try:
                    going_on = self._read_one(i, path, put)
                except Exception as exc:  # a bug or a parser we did not expect: this file fails
                    # for a developer's log only: the user gets the message below, no traceback
                    log.debug("reading %s failed", display(path), exc_info=True)
                    going_on = put(
                        _Outcome(
                            i,
                            str(path),
                            "failed",
                            f"'{display(path.name)}' could not be read: unexpected "
                            f"{type(exc).__name__}. The other files are not affected.",
                        )
                    )
                if not going_on:
                    return
        finally:
            put(_DONE)

    def _read_one(self, i: int, path: Path, put) -> bool:
        """Read one file and send what came of it; False when the run is stopping."""
        for attempt in range(READ_ATTEMPTS):
            got = self._read_version(i, path, put)
            if got is not _CHANGED:
                return got
            log.info("%s changed while it was read (read %d)", display(path), attempt + 1)
            if not put(_Restart(i)):
                return False
        return put(
            _Outcome(
                i,
                str(path),
                "failed",
                f"'{display(path.name)}' kept changing while it was read; add it again when "
                "it is saved.",
                size=_size(path),
            )
        )

    def _read_version(self, i: int, path: Path, put):
        """Read the file as it is now: True/False as _read_one, or _CHANGED when it changed
        between its hash and its last page (what was sent of it must then be dropped)."""
        name = str(path)
        st = None
        try:
            st = path.stat()
            kind = sniff(path)  # refuse unsupported files before hashing them
            version = version_of(
                file_hash(path),
                self.options.chunk_tokens,
                self.options.chunk_overlap,
                reader_revision(path, kind),
            )
        except DocumentError as exc:
            size, mtime = (st.st_size, st.st_mtime) if st else (_size(path), 0.0)
            return put(_Outcome(i, name, exc.status, exc.message, size=size, mtime=mtime))
        except OSError as exc:
            err = UnreadableFile(
                f"'{path.name}' could not be read ({exc.strerror or exc}). "
                "Check that it still exists and that you may open it."
            )
            return put(_Outcome(i, name, err.status, err.message))
        existing = self.library.document(name)
        if (
            existing
            and existing.hash == version
            and existing.status == DocStatus.READY
            and not existing.pending
        ):
            if (existing.size, existing.mtime) != (st.st_size, st.st_mtime):  # only touched
                self.library.note_stat(existing.id, st.st_size, st.st_mtime)
            return put(_Outcome(i, name, "unchanged", chunks=existing.chunks))
        replacing = bool(existing and existing.hash)
        if not put(_Begin(i, name, version, st.st_size, st.st_mtime, replacing)):
            return False
        pages = 0
        try:
            if kind in ("pdf", "docx"):  # parsed under the worker's memory and time limits
                source = self._page_reader.chunks(path)
            else:
                source = chunk_batches(read_pages(path), self._chunker)
            batch: list[Chunk] = []
            for chunks, n in source:
                pages += n
                of = self._page_reader.page_total if kind in ("pdf", "docx") else 0
                batch.extend(chunks)
                while len(batch) >= self._window:
                    if not put(_Chunks(i, batch[: self._window], pages, of)):
                        return False
                    batch = batch[self._window :]
            if batch and not put(_Chunks(i, batch, pages, of)):
                return False
            if _identity(path.stat()) != _identity(st):  # raises OSError if it is gone
                return _CHANGED
            return put(_End(i, pages))
        except DocumentError as exc:
            if _changed_since(path, st):  # a file half-saved may look damaged: read it again
                return _CHANGED
            return put(_Outcome(i, name, exc.status, exc.message))
        except OSError as exc:
            if _changed_since(path, st):
                return _CHANGED
            return put(
                _Outcome(
                    i,
                    name,
                    "failed",
                    f"'{path.name}' could not be read to the end ({exc.strerror or exc}).",
                )
            )


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file is written (in place or by replacing it)."""
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev


def _changed_since(path: Path, st: os.stat_result) -> bool:
    """Whether the file is there and no longer the one `st` described."""
    try:
        return _identity(path.stat()) != _identity(st)
    except OSError:  # gone: reading it again would only say so
        return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
