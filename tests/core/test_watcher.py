"""The source watcher with the real watchdog on a tmp folder: a change is reported once the
folder is quiet, watches are added off the caller's thread (adding one walks the whole tree),
a folder that cannot be watched is reported and not retried, and close() stops it all."""

from __future__ import annotations

import threading
import time

from app.core.watcher import SourceWatcher


def _wait(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_changes_are_reported_and_watches_are_added_off_the_callers_thread(tmp_path):
    root = tmp_path / "shared"
    (root / "sub").mkdir(parents=True)
    changes: list[set[str]] = []
    errors: list[tuple[str, str]] = []
    watcher = SourceWatcher(changes.append, quiet=0.2, on_error=lambda r, e: errors.append(r))
    threads = []
    original = watcher._reschedule

    def recording(want):
        threads.append(threading.current_thread())
        original(want)

    watcher._reschedule = recording
    try:
        missing = tmp_path / "unplugged"
        watcher.watch([str(root), str(missing)])
        assert _wait(lambda: watcher.watched() == {str(root)} and errors)
        assert threads and threading.main_thread() not in threads
        assert errors == [str(missing)]  # said once, not retried in a loop
        (root / "sub" / "new.txt").write_text("a new file")
        assert _wait(lambda: changes)
        assert changes[0] == {str(root)}
        watcher.watch([])
        assert _wait(lambda: watcher.watched() == set())
        changes.clear()
        (root / "later.txt").write_text("not watched any more")
        time.sleep(0.6)
        assert changes == []
    finally:
        watcher.close()
    watcher.watch([str(root)])  # after close: nothing starts
    time.sleep(0.2)
    assert watcher.watched() == set()
