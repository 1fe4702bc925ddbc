"""Watching source folders while the window runs (watchdog: inotify, FSEvents,
ReadDirectoryChangesW), debounced into "these sources changed" calls.

Changes come in bursts (a copy of a thousand files, an editor's save = write, rename, delete),
and a file being written is not worth reading yet: the watcher waits until a source has been
quiet for `quiet` seconds (or busy for `longest`, so a folder that never stops changing is
still synced) and then calls `on_change(roots)` from its own thread. The reconcile that follows
(sources.py) finds out what changed; a file still being written when it is read is read again
(ingest.py), and its last write brings another call.

Only events that change files count: Confidant's own reads (open, close without writing) would
otherwise wake it after every sync. Hidden files are passed over, as the walk does.

The core never imports Qt: the window hands `on_change` a function that queues a sync job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

QUIET_S = 1.5
LONGEST_S = 15.0
_COUNTED = frozenset({"created", "modified", "deleted", "moved", "closed"})


class SourceWatcher:
    def __init__(
        self,
        on_change: Callable[[set[str]], None],
        quiet: float = QUIET_S,
        longest: float = LONGEST_S,
        ignore: Iterable[str] = (),
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.on_change = on_change
        self.on_error = on_error
        self.quiet = quiet
        self.longest = longest
        self._ignore = [os.path.join(os.path.realpath(p), "") for p in ignore]
        self._lock = threading.Lock()
        self._dirty: dict[str, float] = {}  # source -> when its first unsynced change came
        self._last = 0.0
        # source -> watchdog's watch (None: it could not be watched); changed under
        # _observer_lock, by the thread that applies watch() calls
        self._roots: dict[str, object | None] = {}
        self._want: set[str] = set()  # what the latest watch() asked for
        self._applying = False  # a thread is applying it
        self._observer_lock = threading.Lock()
        self._observer = None
        self._timer: threading.Timer | None = None
        self._closed = False

    # ------------------------------------------------------------------ which folders
    def watch(self, roots: Iterable[str]) -> None:
        """Watch exactly `roots` from now on (folders that cannot be watched are reported to
        on_error and left to the syncs at start and on demand). Returns at once: adding a watch
        walks the whole folder (inotify watches each subfolder), which for a large tree is not
        for the caller to wait on (the window's thread calls this); a thread of its own does it.
        """
        roots = {os.path.realpath(r) for r in roots}
        with self._lock:
            if self._closed:
                return
            self._want = roots
            if self._applying:
                return  # the running thread picks the new set up when it is done
            self._applying = True
        threading.Thread(target=self._apply, name="confidant-watch", daemon=True).start()

    def _apply(self) -> None:
        """Schedule and unschedule watches until they match the latest watch() call."""
        try:
            while True:
                with self._lock:
                    want = self._want
                    if self._closed or want == set(self._roots):
                        self._applying = False  # (under the lock watch() checks it with)
                        return
                with self._observer_lock:  # close() waits for a walk under way
                    if self._closed:
                        continue
                    self._reschedule(want)
        except Exception:  # the observer could not start: the syncs at start still work
            log.exception("watching the source folders failed")
            with self._lock:
                self._applying = False  # the next watch() call tries again

    def _reschedule(self, want: set[str]) -> None:
        if self._observer is None:
            from watchdog.observers import Observer

            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        for root in set(self._roots) - want:
            watch = self._roots.pop(root)
            try:
                self._observer.unschedule(watch)
            except Exception:  # gone with its folder already
                log.debug("unschedule %s", root, exc_info=True)
        for root in want - set(self._roots):
            try:
                self._roots[root] = self._observer.schedule(
                    _Handler(self, root), root, recursive=True
                )
            except Exception as exc:  # offline, or the system's watch limit reached
                log.info("cannot watch %s: %s", root, exc)
                self._roots[root] = None  # tried: not again until it is asked for anew
                if self.on_error is not None:
                    self.on_error(root, str(exc))

    def watched(self) -> set[str]:
        """The folders being watched now (a watch() call takes effect shortly after)."""
        with self._lock:
            return {root for root, watch in list(self._roots.items()) if watch is not None}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
        with self._observer_lock:
            observer, self._observer = self._observer, None
            self._roots.clear()
        if observer is not None:
            observer.stop()
            observer.join(5)

    # ------------------------------------------------------------------ events
    def _changed(self, root: str, path: str) -> None:
        if any(path.startswith(p) for p in self._ignore):
            return
        rel = path[len(root) :]
        if any(part.startswith(".") for part in rel.split(os.sep) if part):
            return
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            self._dirty.setdefault(root, now)
            self._last = now
            if self._timer is None:
                self._arm(self.quiet)

    def _arm(self, delay: float) -> None:
        self._timer = threading.Timer(delay, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._timer = None
            if self._closed or not self._dirty:
                return
            oldest = min(self._dirty.values())
            wait = min(self._last + self.quiet, oldest + self.longest) - now
            if wait > 0.01:
                self._arm(wait)
                return
            roots, self._dirty = set(self._dirty), {}
        try:
            self.on_change(roots)
        except Exception:
            log.exception("sync request failed")


class _Handler:
    """watchdog's handler protocol (dispatch), without subclassing its base at import time."""

    def __init__(self, watcher: SourceWatcher, root: str) -> None:
        self.watcher = watcher
        self.root = root

    def dispatch(self, event) -> None:
        if event.event_type not in _COUNTED:
            return
        for p in (event.src_path, getattr(event, "dest_path", "")):
            if p:
                self.watcher._changed(self.root, os.fsdecode(p))
