"""Small helpers shared by the GUI tests."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, QPointF, Qt, QUrl, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

LONG = 120_000  # ms: generous for 2 busy cores; waits end as soon as the condition holds


def drop_files(window, paths: list[Path]) -> None:
    """Drag `paths` onto the window and drop them, as a file manager would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(
        pos.toPoint(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        pos,
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, drop)


def status_of(window, path: Path) -> str:
    return window.library.documents().get(str(path), ("", ""))[0]


def wait_ingested(qtbot, window, paths: list[Path], status: str = "ready") -> None:
    qtbot.waitUntil(
        lambda: (
            all(status_of(window, p) == status for p in paths)
            and not window.ingest_lane.busy("ingest")
        ),
        timeout=LONG,
    )


def wait_answer(qtbot, window) -> None:
    qtbot.waitUntil(lambda: not window.chats.answers, timeout=LONG)


def shot(window, folder: Path, name: str) -> Path:
    QApplication.processEvents()
    path = folder / f"{name}.png"
    window.grab().save(str(path))
    return path


class ScriptedLane(QObject):
    """The model lane's surface for the chat controller: ask() queues a job; the test plays
    its events (no model), as the real lane would hand them to the GUI thread."""

    event = Signal(object, object)
    failed = Signal(object, str)
    finished = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.jobs: list = []

    def ask(self, question, history, **data):
        from app.gui.lanes import Job

        job = Job("ask", data={"question": question, **data})
        self.jobs.append(job)
        return job

    def play(self, job, *events) -> None:
        for e in events:
            self.event.emit(job, e)

    def end(self, job) -> None:
        self.jobs.remove(job)
        self.finished.emit(job)
