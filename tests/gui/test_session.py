"""Closing, reopening and resuming, offscreen: the parts of a session that test_x11_session.py
drives on a real X server, one rule at a time.

- Drops are answered as copies (drops.py), text drops into the question box too.
- Closing frees the library once the jobs that use it have stopped, without waiting for a
  model load, and the process ends at once (a real `run_window` in a process of its own).
- A launch finding a closing window waits for it; one finding a command-line task says so in
  words, without environment variables; a running window comes to the front when asked.
- Files an earlier session left unfinished say "Waiting to resume" while the start resumes them;
  files the user stopped say "Cancelled".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QMessageBox

from tests.gui.helpers import LONG, drop_files, status_of, wait_ingested

ROOT = Path(__file__).resolve().parents[2]
C, M, L = Qt.DropAction.CopyAction, Qt.DropAction.MoveAction, Qt.DropAction.LinkAction


def _event(kind, mime, actions):
    """A drag event from another program. Shift held makes Qt propose a move wherever one is
    allowed, as it does on X11 for a source that lists move first."""
    event = kind(
        QPoint(10, 10), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier
    )
    assert event.proposedAction() == (M if actions & M else event.proposedAction())
    return event


def _file_mime(path: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


def test_file_drops_are_copies_and_a_move_only_drag_is_refused(qtbot, make_window, home, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("The library opens at nine.\n", encoding="utf-8")
    window = make_window(home)
    window.ingest_lane.submit("hold", _held(threading.Event()))  # nothing is read meanwhile
    mime = _file_mime(note)  # kept: an event does not own its data
    # The handlers are called directly: Qt routes a drop only to the widget that took the
    # drag's enter, which would hide a refusal.
    for actions in (M | C | L, C | M, C):
        enter = _event(QDragEnterEvent, mime, actions)
        window.dragEnterEvent(enter)
        assert enter.isAccepted() and enter.dropAction() == C, actions
        assert window.overlay.isVisible()
        window.dragLeaveEvent(None)
    for actions in (M, L, M | L):  # no copy allowed: a move would take the user's file away
        enter = _event(QDragEnterEvent, mime, actions)
        enter.accept()  # Qt's default; the window must refuse it
        window.dragEnterEvent(enter)
        assert not enter.isAccepted() and not window.overlay.isVisible(), actions
        drop = _event(QDropEvent, mime, actions)
        drop.accept()
        window.dropEvent(drop)
        assert not drop.isAccepted() and window.services.ingestor().pending() == []
    drop = _event(QDropEvent, mime, M | C | L)
    window.dropEvent(drop)
    assert drop.isAccepted() and drop.dropAction() == C
    assert window.services.ingestor().pending() == [str(note)]


def test_text_dragged_into_the_question_box_is_copied(qtbot, make_window, home):
    window = make_window(home)
    box = window.chat.input
    mime = QMimeData()
    mime.setText("opening hours")
    drop = _event(QDropEvent, mime, M | C)  # from another program: no source widget
    box.dropEvent(drop)
    assert "opening hours" in box.toPlainText()
    assert drop.isAccepted() and drop.dropAction() == C


def test_a_path_dragged_into_settings_is_copied(qtbot, home):
    from app.config import Settings
    from app.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings())
    qtbot.addWidget(dialog)
    field = dialog.model_edit
    field.clear()
    mime = QMimeData()
    mime.setText("/models/llama.gguf")
    drop = _event(QDropEvent, mime, M | C)
    field.dropEvent(drop)
    assert "/models/llama.gguf" in field.text()
    assert drop.isAccepted() and drop.dropAction() == C


def _held(release: threading.Event):
    """A job that keeps its lane busy until `release` is set (or the job is cancelled)."""

    def work(job):
        while not release.is_set() and not job.cancel.cancelled:
            time.sleep(0.01)
        return
        yield

    return work


def _left_cancelled(services, path: Path) -> None:
    """What reading `path` leaves in the library when it is cancelled midway (the ingestor's
    own calls): a row marked cancelled, with no live version."""
    lib = services.library
    stat = path.stat()
    doc = lib.begin_version(str(path), "v-partial", stat.st_size, stat.st_mtime)
    lib.abandon_version(doc, "v-partial", "cancelled", "Adding was cancelled before it finished.")


def test_files_left_by_a_quit_say_waiting_to_resume_not_cancelled(
    qtbot, make_window, make_services, home, tmp_path
):
    docs = tmp_path / "docs"
    docs.mkdir()
    quit_file = docs / "handbook.txt"  # being read when the window was closed
    stopped_file = tmp_path / "stopped.txt"  # the user pressed Stop on it
    waiting_file = docs / "rota.txt"  # in the dropped folder, not reached before the quit
    for path in (quit_file, stopped_file, waiting_file):
        path.write_text(f"{path.stem}: staff sign in at the front desk.\n", encoding="utf-8")
    before = make_services(home)
    _left_cancelled(before, quit_file)
    _left_cancelled(before, stopped_file)
    before.ingestor().queue([str(docs)])  # the folder was still asked for when the window closed
    before.close()

    window = make_window(home)
    qtbot.waitUntil(lambda: status_of(window, quit_file) == "cancelled")  # as the library has it
    release = threading.Event()
    window.ingest_lane.submit("hold", _held(release))  # the resume waits behind it
    window.start_background_work()
    shown = window.library.documents()
    assert shown[str(quit_file)] == ("resuming", "Waiting to resume")
    assert shown[str(stopped_file)][0] == "cancelled"  # stopped on purpose: not resumed
    assert shown[str(stopped_file)][1].startswith("Cancelled")
    assert str(waiting_file) not in shown  # never started: the library does not know it yet
    release.set()
    qtbot.waitUntil(lambda: "left unfinished" in window.statusBar().currentMessage(), timeout=LONG)
    wait_ingested(qtbot, window, [quit_file, waiting_file])
    assert status_of(window, stopped_file) == "cancelled"


def test_mark_resuming_leaves_done_and_missing_files_alone(qtbot, tmp_path):
    from app.core.library import DocumentRow
    from app.gui.lanes import LibrarySnapshot
    from app.gui.library_view import LibraryView

    folder = tmp_path / "docs"
    folder.mkdir()
    rows = {}
    for name, status in (
        ("ready.txt", "ready"),
        ("cut.txt", "cancelled"),
        ("crashed.txt", "interrupted"),
        ("failed.txt", "failed"),
        ("gone.txt", "cancelled"),
    ):
        path = folder / name
        if name != "gone.txt":
            path.write_text("x", encoding="utf-8")
        rows[name] = DocumentRow(len(rows) + 1, str(path), None, None, 1, 0.0, status, None, 0, 0)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x", encoding="utf-8")
    view = LibraryView()
    qtbot.addWidget(view)
    view.set_snapshot(LibrarySnapshot(tuple(rows.values()), 0))
    assert view.unfinished_paths() == [str(folder / "crashed.txt")]
    view.mark_resuming([str(folder), str(outside)])
    shown = {Path(p).name: status for p, (status, _detail) in view.documents().items()}
    assert shown == {
        "ready.txt": "ready",
        "cut.txt": "resuming",
        "crashed.txt": "resuming",
        "failed.txt": "failed",
        "gone.txt": "cancelled",
        "elsewhere.txt": "resuming",
    }


# ------------------------------------------------------------------ closing and launching
CLOSING_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from app.gui.main import run_window
    from app.gui.main_window import MainWindow

    report = sys.argv[1]

    def library_job(window):
        def work(job):
            while not job.cancel.cancelled:
                time.sleep(0.01)
            time.sleep(1.0)  # a cancelled ingestion finishing its last write
            try:
                window.services.library.documents()
                state = "open"
            except Exception as exc:
                state = f"closed: {exc}"
            with open(report, "w") as fh:
                json.dump({"library_when_job_ended": state}, fh)
            return
            yield
        return work

    def model_load(job):  # a model load cannot be interrupted; it holds nothing of the library
        time.sleep(120)
        return
        yield

    jobs = []

    def close_when_running():
        if not all(job.started for job in jobs):  # behind the start's own loads
            QTimer.singleShot(20, close_when_running)
            return
        print("closing at", time.time(), flush=True)
        jobs[0].data["window"].close()

    def start():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if not windows or not windows[0].isVisible():
            QTimer.singleShot(20, start)
            return
        window = windows[0]
        jobs.append(window.model_lane.submit("load", model_load, uses_library=False, window=window))
        jobs.append(window.ingest_lane.submit("ingest", library_job(window)))
        close_when_running()

    QTimer.singleShot(0, start)
    run_window([], end_process=True)
    print("run_window returned", flush=True)  # never: the process ends inside it
    """
)


def test_closing_frees_the_library_at_once_and_ends_the_process(home, tmp_path):
    from app.core.instance import InstanceLock

    report = tmp_path / "report.json"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CONFIDANT_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", CLOSING_SCRIPT, str(report)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    ended = time.time()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run_window returned" not in proc.stdout
    # The job that used the library ended before the library was closed...
    assert json.loads(report.read_text()) == {"library_when_job_ended": "open"}
    # ...and the model load (two minutes) was not waited for.
    closing = float(proc.stdout.split("closing at")[1].split()[0])
    print(f"closed to gone: {ended - closing:.1f} s")
    assert ended - closing < 60
    InstanceLock(home, "window").acquire().release()  # released


def test_a_launch_waits_for_a_closing_window(home, monkeypatch):
    from app.core.instance import InstanceLock
    from app.gui.main import _claim

    shown = []
    monkeypatch.setattr(QMessageBox, "information", staticmethod(lambda *a: shown.append(a)))
    # A window on its way out: it holds the lock a moment longer and no longer answers.
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from app.core.instance import InstanceLock\n"
        "lock = InstanceLock(Path(sys.argv[1]), 'window').acquire()\n"
        "print('locked', flush=True)\n"
        "time.sleep(1.5)\n"
        "lock.release()\n"
    )
    closing = subprocess.Popen(
        [sys.executable, "-c", code, str(home)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert closing.stdout.readline().strip() == "locked"
    lock = InstanceLock(home, "window")
    started = time.monotonic()
    assert _claim(lock, home) is None, shown
    waited = time.monotonic() - started
    lock.release()
    closing.wait(timeout=60)
    assert not shown and waited > 0.5


def test_a_launch_during_a_command_line_task_says_so_in_words(home, monkeypatch):
    from app.core.instance import InstanceLock
    from app.gui.main import _claim

    shown = []
    monkeypatch.setattr(QMessageBox, "information", staticmethod(lambda *a: shown.append(a)))
    with InstanceLock(home, "ingest"):
        started = time.monotonic()
        assert _claim(InstanceLock(home, "window"), home) == 2
        assert time.monotonic() - started < 10  # not the closing window's wait
    (_parent, title, text) = shown[0]
    assert title == "Confidant is busy"
    assert text.startswith(f"'confidant ingest' (process {os.getpid()}, started ")
    assert "already using the library" in text
    assert "CONFIDANT_HOME" not in text and str(home) not in text


def _ask_to_come_forward(home: Path) -> subprocess.Popen:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from PySide6.QtCore import QCoreApplication\n"
        "from app.gui.running import bring_forward\n"
        "app = QCoreApplication([])\n"
        "print(bring_forward(Path(sys.argv[1])), flush=True)\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(home)],
        cwd=ROOT,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        stdout=subprocess.PIPE,
        text=True,
    )


def test_a_running_window_comes_to_the_front_when_asked(qtbot, make_window, home):
    from app.gui.running import RaiseServer

    window = make_window(home)
    server = RaiseServer(home)
    server.raise_requested.connect(window.bring_to_front)
    window.closing.connect(server.close)
    window.showMinimized()
    qtbot.waitUntil(window.isMinimized)

    asked = _ask_to_come_forward(home)  # from another process, as a second launch does
    qtbot.waitUntil(lambda: asked.poll() is not None, timeout=60_000)
    assert asked.stdout.read().strip() == "True"
    assert not window.isMinimized() and window.isVisible()

    window.close()  # a closing window stops listening: a launch now waits for the lock
    assert not server.listening
    asked = _ask_to_come_forward(home)
    qtbot.waitUntil(lambda: asked.poll() is not None, timeout=60_000)
    assert asked.stdout.read().strip() == "False"
    other = RaiseServer(Path(str(home) + "-other"))  # another library: another name
    assert other.name != server.name
    other.close()


def test_files_dropped_while_the_embedder_loads_are_read_once(qtbot, make_window, home, tmp_path):
    """The start's resume job runs after the embedder has loaded; a drop meanwhile queues the
    files for its own job. They used to be read by both (the summary said '1 already there')."""
    from app.core.events import FileDone

    note = tmp_path / "badge.txt"
    note.write_text("Visitors wear a badge at all times.\n", encoding="utf-8")
    window = make_window(home)
    release = threading.Event()
    window.ingest_lane.submit("hold", _held(release))  # the embedder 'loading'
    window.start_background_work()
    done = []
    window.ingest_lane.event.connect(
        lambda job, ev: done.append(ev.status) if isinstance(ev, FileDone) else None
    )
    drop_files(window, [note])
    release.set()
    wait_ingested(qtbot, window, [note])
    qtbot.waitUntil(lambda: not window.ingest_lane.busy(), timeout=LONG)
    assert done == ["added"]
    assert window.documents.progress.counts == {"added": 1}
