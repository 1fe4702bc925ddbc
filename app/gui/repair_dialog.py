"""The window's answer to a damaged library: what is damaged, and "Rebuild the library".

Shown at start when `Services.health()` is not ok (or when a library call raises
LibraryDamaged). The rebuild is `Services.repair(cancel)` (app/core/repair.py) run on a thread
of its own; its events come back as signals, drawn as a progress bar and one line of text.
Cancel stops after the file being read: what was rebuilt stays, the rest stays queued and is
finished by the next rebuild or start. Chats and settings are kept; the dialog says so.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from app.core.cancel import CancelToken
from app.core.events import FileDone, IngestStarted
from app.core.paths import display
from app.core.repair import RepairFinished, RepairStarted


class _Relay(QObject):
    event = Signal(object)
    failed = Signal(str)


class RepairDialog(QDialog):
    """Modal. `services`: the composition root (its repair() generator does the work)."""

    def __init__(self, services, report, parent=None) -> None:
        super().__init__(parent)
        self.services = services
        self.setWindowTitle("Your library is damaged")
        self.setModal(True)
        self._token = CancelToken()
        self._thread: threading.Thread | None = None
        self._done = 0
        self._total = 0
        self.finished_event: RepairFinished | None = None

        lines = [d.sentence() for d in report.library] + [d.sentence() for d in report.chats]
        what = "\n".join(f"• {line}" for line in lines)
        self.text = QLabel(
            f"Confidant found damage:\n{what}\n\nRebuilding keeps the damaged files aside (in a "
            "'damaged-…' folder of the data folder) and reads your documents' files again. "
            "Your chats and settings are kept."
        )
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.rebuild = QPushButton("Rebuild the library")
        self.rebuild.setDefault(True)
        self.buttons.addButton(self.rebuild, QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.rebuild.clicked.connect(self.start)
        self.close_button.clicked.connect(self._close_or_cancel)
        layout = QVBoxLayout(self)
        for w in (self.text, self.progress, self.status, self.buttons):
            layout.addWidget(w)
        self._relay = _Relay()
        self._relay.event.connect(self._on_event)
        self._relay.failed.connect(self._on_failed)

    # ------------------------------------------------------------------ the work
    def start(self) -> None:
        self.rebuild.setEnabled(False)
        self.close_button.setText("Stop")
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.status.setText("Setting the damaged files aside…")
        self._thread = threading.Thread(target=self._run, name="confidant-repair", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self.services.repair(self._token):
                self._relay.event.emit(event)
        except Exception as exc:  # shown in the dialog: the window stays usable
            from app.core.errors import describe

            self._relay.failed.emit(describe(exc))

    def _on_event(self, event) -> None:
        if isinstance(event, RepairStarted):
            kept = f" The damaged files are kept in {event.kept_in}." if event.kept_in else ""
            gone = (
                f" {len(event.missing)} document(s) are no longer on disk and cannot be rebuilt."
                if event.missing
                else ""
            )
            self.status.setText(f"Reading {len(event.paths)} document(s) again.{kept}{gone}")
        elif isinstance(event, IngestStarted):
            self._total = event.total
            self.progress.setRange(0, max(event.total, 1))
        elif isinstance(event, FileDone):
            self._done += 1
            self.progress.setValue(self._done)
            name = display(event.path).rsplit("/", 1)[-1]
            self.status.setText(f"{self._done} of {self._total}: {name} ({event.status})")
        elif isinstance(event, RepairFinished):
            self.finished_event = event
            self.close_button.setText("Close")
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            if event.cancelled:
                self.status.setText(
                    "Stopped. What was rebuilt is kept; the rest is read at the next start."
                )
            else:
                missing = f", {len(event.missing)} not found" if event.missing else ""
                added = event.counts.get("added", 0)
                self.status.setText(f"The library is rebuilt: {added} document(s){missing}.")

    def _on_failed(self, message: str) -> None:
        self.close_button.setText("Close")
        self.rebuild.setEnabled(True)
        self.status.setText(f"The rebuild stopped: {message}")

    def _close_or_cancel(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._token.cancel()
            self.status.setText("Stopping after the file being read…")
            return
        self.accept() if self.finished_event else self.reject()

    def closeEvent(self, event) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._token.cancel()
            self._thread.join(30)
        super().closeEvent(event)
