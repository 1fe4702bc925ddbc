"""The library controller: adding, removing and re-indexing documents, and how far it has got.

It turns the user's gestures into jobs on the ingest lane and the lane's events into calls on the
library view. The GUI thread never reads the library itself: the lane sends snapshots of the
documents table, and the latest one is kept here (`snapshot`) for whoever needs the documents
(Settings' re-index estimate). Taking the library's lock on this thread would stall the window
while a commit flushes Chroma.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.events import FileDone, FileProgress, FileStarted, IngestFinished, IngestStarted
from app.core.status import DocStatus
from app.gui.ingest_progress import IngestProgress
from app.gui.lanes import (
    IngestBlocked,
    Job,
    LibrarySnapshot,
    Resuming,
    SourcesSnapshot,
    StoreTrouble,
)

log = logging.getLogger(__name__)

# A file's outcome in a run -> its document's status (the others are both: skipped, failed, ...)
DONE_STATUS = {"added": DocStatus.READY, "replaced": DocStatus.READY, "unchanged": DocStatus.READY}

# The re-index prompt estimates its time from the last ingestion on this machine that embedded
# at least RATE_MIN_CHUNKS passages (a GPU is many times a 2-core CPU), else from a 2-core CPU's
# rate.
RATE_KEY = "ingest/chunks_per_s"
RATE_MIN_CHUNKS = 256
GUESSED_RATE = 40.0


def summary(counts: dict) -> str:
    """A finished run in one sentence, for the status bar."""
    added = counts.get("added", 0) + counts.get("replaced", 0)
    parts = [f"Added {added} document{'s' if added != 1 else ''}"]
    for key, word in (
        ("unchanged", "already there"),
        ("skipped", "skipped"),
        ("failed", "could not be read"),
        ("cancelled", "cancelled"),
    ):
        if counts.get(key):
            parts.append(f"{counts[key]} {word}")
    return ", ".join(parts) + "."


class LibraryController(QObject):
    snapshot_changed = Signal(object)  # LibrarySnapshot
    message = Signal(str, int)  # a status-bar message, its timeout in ms
    failed = Signal(str)  # a run could not go on: the window shows a dialog
    reindex_offered = Signal(str)  # ingestion refused: the library needs a re-index
    store_trouble = Signal(object)  # a StoreTrouble: damaged (offer the rebuild) or disk full
    prune_offered = Signal(str, str)  # a source folder is missing: folder, sentence (confirm)
    _watched = Signal(object)  # the watcher's thread: these sources changed

    def __init__(self, services, lane, view, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.lane = lane
        self.view = view
        self.progress = IngestProgress()
        self.snapshot = LibrarySnapshot((), 0)
        self._resume: Job | None = None  # the start's resume job, until it begins
        self._closing = False
        self._clock = QTimer(self)  # the estimate moves on between events too
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self._show_progress)
        lane.event.connect(self._event)
        lane.failed.connect(self._failed)
        lane.finished.connect(self._finished)
        view.cancel_requested.connect(self.cancel)
        self.sources_view = None
        self.watcher = None
        self._watched.connect(self._sources_changed)

    # ------------------------------------------------------------------ source folders
    def attach_sources(self, sources_view) -> None:
        """Show the folders kept in sync there, and watch them while the window runs."""
        from app.core.watcher import SourceWatcher

        self.sources_view = sources_view
        sources_view.sync_requested.connect(self.sync)
        sources_view.pause_requested.connect(self.set_paused)
        sources_view.forget_requested.connect(self.forget_source)
        # Called on the watcher's thread: the signal takes it to this one.
        self.watcher = SourceWatcher(self._watched.emit, ignore=[str(self.services.home)])
        self.lane.sources()

    def sync(self, roots=None, prune: bool = False) -> Job:
        if not self.lane.busy("ingest") and not self.lane.busy("sync"):
            self.progress = IngestProgress()
        return self.lane.sync(roots, prune)

    def _sources_changed(self, roots) -> None:
        if self._closing:
            return
        pending = [j for j in self.lane.jobs if j.kind == "sync" and not j.started]
        if any(j.data.get("roots") is None for j in pending):
            return  # a sync of every folder is waiting already
        self.sync(sorted(roots))

    def set_paused(self, path: str, paused: bool) -> Job:
        from app.core.sources import set_paused

        def work(job: Job):
            set_paused(self.services.library, path, paused)
            yield SourcesSnapshot(tuple(self.services.library.sources()))

        return self.lane.submit("refresh", work)

    def forget_source(self, path: str) -> Job:
        return self.lane.forget_source(path)

    def _show_sources(self, sources) -> None:
        if self.sources_view is not None:
            self.sources_view.set_sources(sources)
        if self.watcher is not None:
            self.watcher.watch(s.path for s in sources if s.state == "online" and not s.paused)

    @property
    def ready_count(self) -> int:
        return sum(1 for d in self.snapshot.documents if d.status == DocStatus.READY)

    def shut(self) -> None:
        self._closing = True
        self._clock.stop()
        if self.watcher is not None:
            self.watcher.close()

    # ------------------------------------------------------------------ gestures
    def add(self, paths: list[str]) -> Job:
        paths = [str(p) for p in paths]
        if not self.lane.busy("ingest"):
            self.progress = IngestProgress()
        self.services.ingestor().queue(paths)  # kept until read: a closed window resumes it
        self.view.mark_queued(paths)

        def remember(job: Job):  # folders are kept in sync from now on; files stay documents
            from app.core.sources import remember

            if remember(self.services.library, paths):
                yield SourcesSnapshot(tuple(self.services.library.sources()))

        self.lane.submit("refresh", remember)
        self._show_progress()
        return self.lane.ingest(paths)

    def cancel(self) -> None:
        self.lane.cancel_all("ingest")
        self.services.ingestor().forget_all()  # stopped on purpose: not resumed at next start
        self.view.set_progress_note("Cancelling…")

    def remove(self, paths: list[str]) -> Job | None:
        """Take documents out (the window has asked the user first)."""
        if not paths:
            return None
        for p in paths:
            self.view.set_live(p, DocStatus.REMOVING)
        return self.lane.remove(paths)

    def reindex(self, settings=None) -> Job:
        self.progress = IngestProgress()
        self._show_progress()
        return self.lane.reindex(settings)

    def refresh(self) -> Job:
        return self.lane.refresh()

    def resume(self) -> Job:
        """At start: what an earlier session left unfinished says so (not "Cancelled") while
        the embedder loads, then the lane picks it up."""
        self.progress = IngestProgress()
        self._resume = self.lane.resume(self.services.ingestor().pending())
        self._mark_resuming()
        return self._resume

    def _mark_resuming(self) -> None:
        # Again with each snapshot until the job begins: the first one may come after this.
        if self._resume is not None and not self._resume.started:
            paths = self.services.ingestor().pending() + self.view.unfinished_paths()
            self.view.mark_resuming(paths)

    def known_rate(self) -> float:
        """Passages embedded per second on this machine (for the re-index prompt)."""
        try:
            value = float(self.services.history.get_state(RATE_KEY) or 0)
        except ValueError:
            value = 0.0
        return value if value > 0 else GUESSED_RATE

    # ------------------------------------------------------------------ lane events
    def _event(self, job: Job, event) -> None:
        if self._closing:
            return
        if isinstance(event, LibrarySnapshot):
            self.apply_snapshot(event)
            return
        from app.core.sources import FileMoved, SourceChecked, SyncFinished

        if isinstance(event, SourcesSnapshot):
            self._show_sources(event.sources)
            return
        if isinstance(event, FileMoved):
            self.view.file_moved(event.path, event.old_path)
            return
        if isinstance(event, SourceChecked):
            if event.state == "missing" and event.message:
                self.prune_offered.emit(event.path, event.message)
            elif event.message:
                self.message.emit(event.message, 15000)
            return
        if isinstance(event, SyncFinished):
            self._show_sources(event.sources)
            return
        if isinstance(event, (IngestStarted, FileStarted, FileProgress, FileDone)):
            self.progress.update(event)
        if isinstance(event, IngestStarted):
            self._show_progress()
        elif isinstance(event, FileStarted):
            self.view.set_live(event.path, "reading")
        elif isinstance(event, FileProgress):
            self.view.set_live(event.path, event.stage, event.chunks)
        elif isinstance(event, FileDone):
            self.view.file_done(
                event.path,
                DONE_STATUS.get(event.status, event.status),
                event.pages,
                event.chunks,
                event.error,
            )
            self._show_progress()
        elif isinstance(event, IngestFinished):
            if event.chunks >= RATE_MIN_CHUNKS and event.seconds > 0:
                rate = event.chunks / event.seconds
                self.services.history.set_state(RATE_KEY, f"{rate:.3g}")
        elif isinstance(event, Resuming):
            self.progress.resuming = True
            self.view.mark_resuming(list(event.paths))
            self._show_progress()
            n = len(event.paths)
            self.message.emit(
                f"Picking up {n} item{'s' if n != 1 else ''} left unfinished last time.", 10000
            )
        elif isinstance(event, IngestBlocked):
            self.reindex_offered.emit(event.message)
        elif isinstance(event, StoreTrouble):
            self.store_trouble.emit(event)

    def _failed(self, job: Job, message: str) -> None:
        if self._closing:
            return
        what = "Removing documents" if job.kind == "remove" else "Adding documents"
        self.message.emit(f"{what} failed: {message}", 15000)
        self.failed.emit(f"{what} failed: {message}")

    def _finished(self, job: Job) -> None:
        if self._closing:
            return
        if job.kind in ("ingest", "remove", "sync") and not (
            self.lane.busy("ingest") or self.lane.busy("sync")
        ):
            self._clock.stop()
            self.view.hide_progress()
            self.view.clear_live()
            self.lane.refresh()
            counts = self.progress.counts
            if job.kind in ("ingest", "sync") and counts:
                self.message.emit(summary(counts), 10000)
            # Files that could not be added are summed up in a note that stays until it is
            # dismissed (the status bar's message goes after a few seconds).
            self.view.show_failures()

    # ------------------------------------------------------------------ view
    def apply_snapshot(self, snapshot: LibrarySnapshot) -> None:
        self.snapshot = snapshot
        self.view.set_snapshot(snapshot)
        self._mark_resuming()
        self.snapshot_changed.emit(snapshot)

    def _show_progress(self) -> None:
        value, maximum = self.progress.bar()
        self.view.set_progress(value, maximum, self.progress.text())
        if not self._clock.isActive():
            self._clock.start()
