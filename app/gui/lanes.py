"""Lanes: one QThread each, running core generators one job at a time.

A job is a generator function run on the lane's thread; every object it yields is handed to the
GUI thread unchanged through `event` (a queued Signal(object, object): job, event). Jobs submitted
while one runs wait their turn in the thread's event queue. Each job has its own CancelToken.
Workers never touch widgets.

Closing: `finish()` cancels every job and lets the thread end after the one it is in; a job that
was cancelled before it started never runs. `holds_library()` says whether the job still running
uses the library: loading a model or the embedder does not, so the window can close the library
and release it without waiting minutes for a load that cannot be interrupted.

ModelLane owns the LlamaEngine: llama.cpp is not thread-safe, so every engine call (load, ask,
drop) happens on that one thread. IngestLane runs ingestion, removal and re-indexing, and answers
with snapshots of the library table so the GUI thread never queries the store itself.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.cancel import CancelToken
from app.core.errors import describe
from app.core.events import FileDone, IngestFinished

log = logging.getLogger(__name__)

_ids = itertools.count(1)

# Each lane's thread and worker, kept until the thread has ended: a window closed (and dropped)
# while a load still runs on its lane must not delete a running QThread (Qt aborts the process).
_alive: dict[int, tuple[QThread, QObject]] = {}


@dataclass(eq=False)
class Job:
    kind: str
    cancel: CancelToken = field(default_factory=CancelToken)
    id: int = field(default_factory=lambda: next(_ids))
    data: dict = field(default_factory=dict)  # whatever the submitter wants back with events
    uses_library: bool = True  # False: it never touches the library (model and embedder loads)
    started: bool = False  # set on the lane's thread, before it looks at `cancel`
    ended: bool = False


# --------------------------------------------------------------------- events the lanes add
@dataclass(frozen=True)
class ModelLoading:
    """The engine is about to load (the status bar says so)."""


@dataclass(frozen=True)
class ModelReady:
    model: str
    where: str  # "CPU" or "GPU, 33/33 layers"
    warning: str | None = None


@dataclass(frozen=True)
class ModelFailed:
    message: str


@dataclass(frozen=True)
class ModelDropped:
    pass


@dataclass(frozen=True)
class LibrarySnapshot:
    documents: tuple  # DocumentRow, sorted by path
    chunks: int


@dataclass(frozen=True)
class SourcesSnapshot:
    """The source folders (library.SourceRow), read on the ingest lane."""

    sources: tuple


@dataclass(frozen=True)
class Resuming:
    """An earlier session's unfinished requests are being picked up (see ingest_queue.py)."""

    paths: tuple[str, ...]


@dataclass(frozen=True)
class StoreTrouble:
    """A job stopped because the library is damaged or the disk is full (store_health.py):
    the window offers the rebuild, or says where to free space."""

    message: str
    damaged: bool
    damages: tuple = ()  # store_health.Damage: what the error says is damaged


@dataclass(frozen=True)
class ServerDown:
    """A team server (docs/team-setup.md) could not be reached, or its address is refused:
    the window says which and what to do. `which`: "library" or "model"."""

    which: str
    message: str


def _server_down(which: str, exc: Exception) -> ServerDown | None:
    """A ServerDown for a team server's failure (app/core/team/http.py), else None."""
    from app.core.team.http import InsecureServer, ServerUnavailable

    if isinstance(exc, (ServerUnavailable, InsecureServer)):
        return ServerDown(which, str(exc))
    return None


@dataclass(frozen=True)
class IngestBlocked:
    """Ingestion refused to start (the library was made with another embedding model)."""

    message: str
    mismatch: bool = True


class _Worker(QObject):
    event = Signal(object, object)
    failed = Signal(object, str)
    finished = Signal(object)

    @Slot(object, object)
    def run(self, job: Job, work: Callable[[Job], Iterator[object]]) -> None:
        # `started` before the look at `cancel`: whoever cancels and then sees it unset knows
        # the job will never run.
        job.started = True
        try:
            if job.cancel.cancelled:
                return
            for item in work(job):
                self.event.emit(job, item)
        except Exception as exc:  # a job must never kill its lane
            log.exception("%s job failed", job.kind)
            self.failed.emit(job, describe(exc))
        finally:
            job.ended = True
            self.finished.emit(job)

    @Slot()
    def end(self) -> None:
        """Queued after every job submitted so far: the thread ends once they are done."""
        QThread.currentThread().quit()


class Lane(QObject):
    """A QThread with one worker. submit() queues a job; stop() cancels and joins."""

    event = Signal(object, object)  # job, event object
    failed = Signal(object, str)  # job, plain sentence
    finished = Signal(object)  # job
    _submit = Signal(object, object)
    _end = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName(name)
        self._worker = _Worker()
        self._worker.moveToThread(self._thread)
        self._submit.connect(self._worker.run)
        self._end.connect(self._worker.end)
        self._worker.event.connect(self.event)
        self._worker.failed.connect(self.failed)
        self._worker.finished.connect(self._done)
        self.jobs: list[Job] = []  # queued or running, oldest first
        self._finishing = False
        key = id(self._thread)
        _alive[key] = (self._thread, self._worker)
        self._thread.finished.connect(lambda key=key: _alive.pop(key, None))
        self._thread.start()

    def submit(
        self,
        kind: str,
        work: Callable[[Job], Iterator[object]],
        *,
        uses_library: bool = True,
        **data,
    ) -> Job:
        job = Job(kind, data=data, uses_library=uses_library)
        self.jobs.append(job)
        self._submit.emit(job, work)
        return job

    def busy(self, kind: str | None = None) -> bool:
        return any(kind is None or j.kind == kind for j in self.jobs)

    def cancel_all(self, kind: str | None = None) -> None:
        for job in self.jobs:
            if kind is None or job.kind == kind:
                job.cancel.cancel()

    def _done(self, job: Job) -> None:
        if job in self.jobs:
            self.jobs.remove(job)
        self.finished.emit(job)

    def holds_library(self) -> bool:
        """Whether a job that uses the library is running (after finish(): will still run)."""
        return any(j.uses_library and j.started and not j.ended for j in self.jobs)

    def finish(self) -> None:
        """Cancel everything and let the thread end after its current job; returns at once."""
        if self._finishing:
            return
        self._finishing = True
        self.cancel_all()
        self._end.emit()

    def join(self, timeout_ms: int = 30_000, quiet: bool = False) -> bool:
        """Wait for the thread to end (after finish()); False if it still runs."""
        ok = self._thread.wait(timeout_ms)
        if not ok and not quiet:
            log.warning("lane %s did not stop in %d ms", self._thread.objectName(), timeout_ms)
        return ok

    def stop(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything, let the thread finish its current job, join it."""
        self.finish()
        return self.join(timeout_ms)


class ModelLane(Lane):
    """Everything that touches the LlamaEngine, on one thread."""

    def __init__(self, services, parent: QObject | None = None) -> None:
        super().__init__("confidant-model", parent)
        self.services = services

    def _report(self) -> ModelReady | None:
        engine = self.services.engine()
        report = engine.report
        if report is None:
            return None
        from app.config import llm_path
        from app.core.model_names import display_name

        name = display_name(llm_path(self.services.settings), report.model)
        return ModelReady(name, report.where, report.warning)

    def preload(self) -> Job:
        def work(job: Job) -> Iterator[object]:
            yield ModelLoading()
            try:
                self.services.engine().load()
            except Exception as exc:
                log.warning("model did not load: %s", exc)
                down = _server_down("model", exc)
                if down is not None:
                    yield down
                yield ModelFailed(describe(exc))
                return
            yield self._report()

        return self.submit("load", work, uses_library=False)

    def ask(self, question: str, history: Sequence, **data) -> Job:
        def work(job: Job) -> Iterator[object]:
            try:
                loading = not self.services.engine().loaded
            except Exception:  # no model configured: the chat session says so in words
                loading = False
            if loading:
                yield ModelLoading()
            yield from self.services.chat().ask(question, job.cancel, history)
            try:
                report = self._report()
            except Exception:
                report = None
            if report is not None:
                yield report
            elif loading:  # nothing to answer from: the model was not needed after all
                yield ModelDropped()

        return self.submit("ask", work, question=question, **data)

    def drop_engine(self, reload: bool = True) -> Job:
        def work(job: Job) -> Iterator[object]:
            self.services.drop_engine()
            yield ModelDropped()

        job = self.submit("drop", work, uses_library=False)
        if reload:
            self.preload()
        return job


class IngestLane(Lane):
    """Adding, removing and re-indexing documents, one job after the other."""

    SNAPSHOT_EVERY_S = 0.4

    def __init__(self, services, parent: QObject | None = None) -> None:
        super().__init__("confidant-ingest", parent)
        self.services = services

    def submit(self, kind, work, *, uses_library: bool = True, **data) -> Job:
        return super().submit(kind, self._guarded(work), uses_library=uses_library, **data)

    def _guarded(self, work: Callable[[Job], Iterator[object]]):
        """A damaged library or a full disk ends the job with a StoreTrouble the window can act
        on, a team library server that cannot be reached with a ServerDown, instead of an
        error sentence."""

        def run(job: Job) -> Iterator[object]:
            try:
                yield from work(job)
            except Exception as exc:
                from app.core.store_health import LibraryDamaged, explain

                down = _server_down("library", exc)
                if down is not None:  # team mode: the job ends, the window says so
                    log.warning("ingest lane: %s", down.message)
                    yield down
                    return
                found = explain(exc, self.services.home)
                if found is None:
                    raise
                log.warning("ingest lane: %s", found)
                damaged = isinstance(found, LibraryDamaged)
                yield StoreTrouble(str(found), damaged, tuple(found.damages) if damaged else ())

        return run

    def snapshot(self) -> LibrarySnapshot:
        library = self.services.library
        return LibrarySnapshot(tuple(library.documents()), library.chunk_count())

    def _ingest(self, paths: Sequence[str], job: Job) -> Iterator[object]:
        from app.core.embedding import EmbedderError
        from app.core.library import EmbedderMismatch

        last = 0.0
        try:
            for item in self.services.ingestor().run(list(paths), job.cancel):
                yield item
                now = time.monotonic()
                if isinstance(item, IngestFinished) or (
                    isinstance(item, FileDone) and now - last > self.SNAPSHOT_EVERY_S
                ):
                    last = now
                    yield self.snapshot()
        except (EmbedderMismatch, EmbedderError) as exc:
            self.services.ingestor().forget(paths)  # a refused request is not resumed later
            yield IngestBlocked(str(exc))
            yield self.snapshot()

    def ingest(self, paths: Sequence[str]) -> Job:
        paths = [str(p) for p in paths]
        return self.submit("ingest", lambda job: self._ingest(paths, job), paths=paths)

    def resume(self, queued: Sequence[str] | None = None) -> Job:
        """Finish what an earlier session asked for and did not (closed mid-ingest, crashed,
        re-index cut short); a job that ends at once if nothing is left. `queued`: the ingest
        queue as it was when the window opened. What was dropped since (while the embedder
        loaded) is its own ingest job's: resumed here too, it was read twice."""
        earlier = None if queued is None else set(map(str, queued))

        def work(job: Job) -> Iterator[object]:
            paths = self.services.ingestor().resumable()
            if earlier is not None:
                unfinished = set(self.services.library.unfinished())
                paths = [p for p in paths if p in earlier or p in unfinished]
            if paths:
                yield Resuming(tuple(paths))
                yield from self._ingest(paths, job)

        return self.submit("ingest", work, paths=[], resume=True)

    def remove(self, paths: Sequence[str]) -> Job:
        paths = [str(p) for p in paths]

        def work(job: Job) -> Iterator[object]:
            for path in paths:
                self.services.library.remove(path)
            yield self.snapshot()

        return self.submit("remove", work, paths=paths)

    def reindex(self, settings=None) -> Job:
        """Read every known file again (with `settings` if given): see Ingestor.start_reindex."""

        def work(job: Job) -> Iterator[object]:
            if settings is not None:
                self.services.apply_settings(settings)
            paths = self.services.ingestor().start_reindex()
            yield self.snapshot()
            yield from self._ingest(paths, job)

        return self.submit("ingest", work, paths=[], reindex=True)

    def sync(self, roots: Sequence[str] | None = None, prune: bool = False) -> Job:
        """Reconcile the source folders (all, or `roots`) with the library (sources.py).
        Unchanged files are counted, not sent one by one: a 20,000-file folder would flood the
        GUI thread with events that change nothing on screen."""
        from app.core.sources import SyncFinished, reconcile

        roots = list(roots) if roots is not None else None

        def work(job: Job) -> Iterator[object]:
            last = time.monotonic()
            ingestor = self.services.ingestor()
            for item in reconcile(self.services.library, ingestor, job.cancel, roots, prune):
                if isinstance(item, FileDone) and item.status == "unchanged":
                    continue
                yield item
                now = time.monotonic()
                if isinstance(item, SyncFinished) or now - last > self.SNAPSHOT_EVERY_S * 5:
                    last = now
                    yield self.snapshot()

        return self.submit("sync", work, roots=roots, prune=prune)

    def forget_source(self, path: str) -> Job:
        from app.core.sources import forget

        def work(job: Job) -> Iterator[object]:
            for _ in forget(self.services.library, path):
                pass
            yield self.snapshot()
            yield SourcesSnapshot(tuple(self.services.library.sources()))

        return self.submit("remove", work, paths=[path])

    def sources(self) -> Job:
        return self.submit(
            "refresh", lambda job: iter([SourcesSnapshot(tuple(self.services.library.sources()))])
        )

    def refresh(self) -> Job:
        return self.submit("refresh", lambda job: iter([self.snapshot()]))

    def warm_up(self) -> Job:
        """Load the embedding model ahead of the first question or drop."""

        def work(job: Job) -> Iterator[object]:
            try:
                self.services.embedder.load()
            except Exception as exc:
                log.warning("embedder did not load: %s", exc)
            return
            yield

        return self.submit("warm", work, uses_library=False)
