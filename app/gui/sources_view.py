"""The folders kept in sync: each with its state, documents and last sync; Sync now, pause or
resume watching, and forget a folder (with its documents, after asking).

It draws SourcesSnapshots (the sources table, read on the ingest lane) and asks for work
through signals; the library controller runs it on the lane.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.paths import display

PATH_ROLE = Qt.ItemDataRole.UserRole
STATE_WORDS = {"online": "", "offline": "Offline", "missing": "Missing", "removing": "Removing…"}


def source_text(s) -> str:
    when = time.strftime("%d %b %H:%M", time.localtime(s.last_sync)) if s.last_sync else "never"
    bits = [f"{s.files} document{'s' if s.files != 1 else ''}", f"synced {when}"]
    if s.paused:
        bits.append("watching paused")
    state = STATE_WORDS.get(s.state, s.state)
    if state:
        bits.insert(0, state)
    return f"{display(s.path)}\n" + " · ".join(bits)


class SourcesView(QWidget):
    sync_requested = Signal()
    pause_requested = Signal(str, bool)  # folder, paused
    forget_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sources: tuple = ()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        title = QLabel("Folders kept in sync")
        title.setObjectName("sectionTitle")
        head.addWidget(title)
        head.addStretch()
        self.sync_button = QPushButton("Sync now")
        self.sync_button.setToolTip("Look for new, changed, moved and deleted files now")
        self.sync_button.clicked.connect(self.sync_requested)
        head.addWidget(self.sync_button)
        layout.addLayout(head)
        self.list = QListWidget()
        self.list.setAccessibleName("Folders kept in sync")
        self.list.itemSelectionChanged.connect(self._selection_changed)
        layout.addWidget(self.list)
        buttons = QHBoxLayout()
        self.pause_button = QPushButton("Pause watching")
        self.pause_button.clicked.connect(self._toggle_pause)
        self.forget_button = QPushButton("Forget folder…")
        self.forget_button.setToolTip("Stop syncing this folder and remove its documents")
        self.forget_button.clicked.connect(self._forget)
        buttons.addWidget(self.pause_button)
        buttons.addWidget(self.forget_button)
        layout.addLayout(buttons)
        self.setVisible(False)
        self._selection_changed()

    def set_sources(self, sources) -> None:
        current = self.selected()
        self.sources = tuple(sources)
        self.list.clear()
        for s in self.sources:
            item = QListWidgetItem(source_text(s))
            item.setData(PATH_ROLE, s.path)
            if s.message:
                item.setToolTip(display(s.message))
            self.list.addItem(item)
            if s.path == current:
                item.setSelected(True)
        self.setVisible(bool(self.sources))
        self._selection_changed()

    def selected(self) -> str | None:
        items = self.list.selectedItems()
        return items[0].data(PATH_ROLE) if items else None

    def _source(self, path: str | None):
        return next((s for s in self.sources if s.path == path), None)

    def _selection_changed(self) -> None:
        s = self._source(self.selected())
        self.pause_button.setEnabled(s is not None)
        self.forget_button.setEnabled(s is not None)
        self.pause_button.setText("Resume watching" if s and s.paused else "Pause watching")

    def _toggle_pause(self) -> None:
        s = self._source(self.selected())
        if s is not None:
            self.pause_requested.emit(s.path, not s.paused)

    def _forget(self) -> None:
        path = self.selected()
        if path:
            self.forget_requested.emit(path)
