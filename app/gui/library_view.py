"""The library panel: every document with its status, add/remove buttons, ingestion progress.

It draws LibrarySnapshots (rows of the documents table, read on the ingest lane) and live stages
(queued, reading, embedding) from ingest events. Removal is asked for through a signal; the main
window runs it on the ingest lane.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFont, QKeySequence, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.paths import display
from app.gui.resources import icon

PATH_ROLE = Qt.ItemDataRole.UserRole
STATUS_ROLE = Qt.ItemDataRole.UserRole + 1
DETAIL_ROLE = Qt.ItemDataRole.UserRole + 2

STATUS_WORDS = {
    "ready": "Ready",
    "queued": "Queued",
    "reading": "Reading…",
    "embedding": "Indexing…",
    "indexing": "Reading…",
    "interrupted": "Interrupted: add it again",
    "skipped": "Skipped",
    "failed": "Failed",
    "cancelled": "Cancelled",
    "removing": "Removing…",
    "resuming": "Waiting to resume",
}
# What a file left unfinished by an earlier session may be shown as until it is read again:
# stopped by closing the window ("cancelled"), by a crash ("interrupted"), or reset by a
# re-index ("queued"). While it is being resumed it is labelled as such, not by these.
LEFT_UNFINISHED = ("cancelled", "interrupted", "queued")
STATUS_COLORS = {
    "ready": "#2e9d5b",
    "failed": "#d9534f",
    "skipped": "#d08a1a",
    "interrupted": "#d08a1a",
    "cancelled": "#8a8a8a",
}
BUSY_COLOR = "#3d7bf0"


def detail_text(status: str, pages: int = 0, chunks: int = 0, error: str | None = None) -> str:
    word = STATUS_WORDS.get(status, status.capitalize())
    if status == "ready":
        bits = [word]
        if pages:
            bits.append(f"{pages} page{'s' if pages != 1 else ''}")
        bits.append(f"{chunks} passage{'s' if chunks != 1 else ''}")
        return " · ".join(bits)
    if error and status in ("failed", "skipped", "cancelled", "interrupted"):
        return f"{word}: {error}"
    if status == "embedding" and chunks:
        return f"{word} {chunks} passages"
    return word


class DocumentDelegate(QStyledItemDelegate):
    """Two lines per document: its name, then its status in a quieter colour, with a dot."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        fm = option.fontMetrics
        return QSize(200, fm.height() * 2 + 18)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else None
        opt.text = ""
        opt.icon = icon("document")  # drawn below ourselves
        if style:
            style.drawPrimitive(
                QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, opt.widget
            )
        painter.save()
        rect = option.rect.adjusted(8, 6, -8, -6)
        path = index.data(PATH_ROLE) or ""
        status = index.data(STATUS_ROLE) or ""
        detail = index.data(DETAIL_ROLE) or ""
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_color = option.palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        kind = "pdf" if path.lower().endswith(".pdf") else "document"
        icon(kind, text_color).paint(painter, QRect(rect.left(), rect.top() + 2, 22, 22))
        left = rect.left() + 30
        fm = option.fontMetrics
        line = fm.height()
        name_font = QFont(option.font)
        name_font.setWeight(QFont.Weight.DemiBold)
        painter.setFont(name_font)
        painter.setPen(text_color)
        name = display(Path(path).name)
        painter.drawText(
            QRect(left, rect.top(), rect.right() - left, line),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            painter.fontMetrics().elidedText(
                name, Qt.TextElideMode.ElideMiddle, rect.right() - left
            ),
        )
        dot = QColor(STATUS_COLORS.get(status, BUSY_COLOR))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(dot)
        y2 = rect.top() + line + 4
        painter.drawEllipse(left + 1, y2 + line // 2 - 3, 7, 7)
        muted = QColor(text_color)
        muted.setAlphaF(0.85 if selected else 0.62)
        painter.setPen(muted)
        painter.setFont(option.font)
        painter.drawText(
            QRect(left + 14, y2, rect.right() - left - 14, line),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            fm.elidedText(detail, Qt.TextElideMode.ElideRight, rect.right() - left - 14),
        )
        painter.restore()


class LibraryView(QWidget):
    add_files = Signal()
    add_folder = Signal()
    remove_requested = Signal(list)  # paths
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: dict[str, tuple[str, str, str]] = {}  # path -> status, detail, tooltip
        self._live: dict[str, tuple[str, str]] = {}  # path -> status, detail (while ingesting)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)

        head = QHBoxLayout()
        title = QLabel("Library")
        title.setObjectName("sectionTitle")
        head.addWidget(title)
        head.addStretch()
        self.count_label = QLabel()
        self.count_label.setObjectName("mutedLabel")
        head.addWidget(self.count_label)
        layout.addLayout(head)

        self.stack = QStackedWidget()
        self.list = QListWidget()
        self.list.setObjectName("libraryList")
        self.list.setAccessibleName("Documents in the library")
        self.list.setItemDelegate(DocumentDelegate(self.list))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setUniformItemSizes(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.itemSelectionChanged.connect(self._selection_changed)
        self.placeholder = QLabel("No documents yet.\nDrop files anywhere on this window.")
        self.placeholder.setObjectName("mutedLabel")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.list)
        layout.addWidget(self.stack, 1)

        self.remove_action = QAction(icon("trash"), "&Remove from library…", self)
        self.remove_action.setShortcut(QKeySequence.StandardKey.Delete)
        self.remove_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.remove_action.triggered.connect(self._remove)
        self.list.addAction(self.remove_action)

        # progress while ingesting
        self.progress_box = QWidget()
        self.progress_box.setObjectName("progressBox")
        pv = QVBoxLayout(self.progress_box)
        pv.setContentsMargins(0, 4, 0, 0)
        pv.setSpacing(4)
        self.progress_label = QLabel()
        self.progress_label.setObjectName("mutedLabel")
        pv.addWidget(self.progress_label)
        prow = QHBoxLayout()
        self.cancel_button = QPushButton("&Cancel")
        self.cancel_button.setToolTip("Stop adding files (what is done stays in the library)")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(6)
        prow.addWidget(self.progress, 1)
        prow.addWidget(self.cancel_button)
        pv.addLayout(prow)
        self.progress_box.hide()
        layout.addWidget(self.progress_box)

        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        self.files_button = QPushButton(icon("add"), "Add files…")
        self.files_button.setToolTip("Add files to the library (Ctrl+O)")
        self.files_button.clicked.connect(self.add_files)
        self.folder_button = QPushButton(icon("folder"), "Add folder…")
        self.folder_button.setToolTip("Add every document in a folder (Ctrl+Shift+O)")
        self.folder_button.clicked.connect(self.add_folder)
        self.remove_button = QToolButton()
        self.remove_button.setDefaultAction(self.remove_action)
        self.remove_button.setToolTip("Remove the selected documents from the library (Delete)")
        self.remove_button.setAutoRaise(True)
        buttons.addWidget(self.files_button, 1)
        buttons.addWidget(self.folder_button, 1)
        buttons.addWidget(self.remove_button)
        layout.addLayout(buttons)
        self._selection_changed()
        self._render()

    # ------------------------------------------------------------------ data in
    def set_snapshot(self, snapshot) -> None:
        rows = {}
        for d in snapshot.documents:
            detail = detail_text(d.status, d.pages, d.chunks, d.error)
            tip = display(d.path) + (f"\n\n{d.error}" if d.error else "")
            rows[d.path] = (d.status, detail, tip)
        self._rows = rows
        ready = sum(1 for d in snapshot.documents if d.status == "ready")
        self.count_label.setText(f"{ready} ready" if snapshot.documents else "")
        self._render()

    def mark_queued(self, paths: list[str]) -> None:
        for p in paths:
            if Path(p).is_file():
                self._live[str(p)] = ("queued", STATUS_WORDS["queued"])
        self._render()

    def unfinished_paths(self) -> list[str]:
        """Documents an earlier run left half-done or a re-index reset: the start resumes them
        whether or not they were still asked for."""
        return [p for p, (status, _d, _t) in self._rows.items() if status in LEFT_UNFINISHED[1:]]

    def mark_resuming(self, paths: list[str]) -> None:
        """`paths` (files, or folders: the files of theirs listed here) are about to be read
        again after an earlier session stopped: 'Waiting to resume' until they are reached.
        Files already done (Ready, Failed...) keep their status; files that do not exist any
        more are not resumed, so not marked."""
        for p in map(str, paths):
            if os.path.isdir(p):
                inside = os.path.join(p, "")
                files = [q for q in self._rows if q.startswith(inside)]
            else:
                files = [p]
            for f in files:
                status = self._rows.get(f, ("queued",))[0]
                if status in LEFT_UNFINISHED and f not in self._live and os.path.isfile(f):
                    self._live[f] = ("resuming", STATUS_WORDS["resuming"])
        self._render()

    def set_live(self, path: str, status: str, chunks: int = 0) -> None:
        self._live[path] = (status, detail_text(status, chunks=chunks))
        self._update_item(path)

    def file_done(
        self, path: str, status: str, pages: int = 0, chunks: int = 0, error: str | None = None
    ) -> None:
        """One file is finished: show its outcome until the next snapshot confirms it."""
        self._live.pop(path, None)
        tip = path + (f"\n\n{error}" if error else "")
        self._rows[path] = (status, detail_text(status, pages, chunks, error), tip)
        self._render()

    def clear_live(self, path: str | None = None) -> None:
        if path is None:
            self._live.clear()
        else:
            self._live.pop(path, None)
        self._render()

    def set_progress(self, done: int, total: int, text: str) -> None:
        self.progress_box.show()
        self.progress.setRange(0, max(1, total) if total else 0)
        self.progress.setValue(done)
        self.progress_label.setText(text)

    def hide_progress(self) -> None:
        self.progress_box.hide()

    # ------------------------------------------------------------------ drawing
    def _entry(self, path: str) -> tuple[str, str, str]:
        status, detail, tip = self._rows.get(path, ("queued", "", path))
        if path in self._live:
            status, detail = self._live[path]
        return status, detail, tip

    def _render(self) -> None:
        paths = sorted(set(self._rows) | set(self._live), key=lambda p: Path(p).name.lower())
        selected = set(self.selected_paths())
        self.list.setUpdatesEnabled(False)
        self.list.clear()
        for path in paths:
            status, detail, tip = self._entry(path)
            item = QListWidgetItem(display(Path(path).name))
            item.setData(PATH_ROLE, path)
            item.setData(STATUS_ROLE, status)
            item.setData(DETAIL_ROLE, detail)
            item.setToolTip(tip if path in self._rows else display(path))
            item.setData(Qt.ItemDataRole.AccessibleDescriptionRole, detail)
            self.list.addItem(item)
            if path in selected:
                item.setSelected(True)
        self.list.setUpdatesEnabled(True)
        self.stack.setCurrentWidget(self.list if paths else self.placeholder)

    def _update_item(self, path: str) -> None:
        for i in range(self.list.count()):
            item = self.list.item(i)
            if item.data(PATH_ROLE) == path:
                status, detail, _tip = self._entry(path)
                item.setData(STATUS_ROLE, status)
                item.setData(DETAIL_ROLE, detail)
                return
        self._render()

    def item_for(self, path: str) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            if self.list.item(i).data(PATH_ROLE) == path:
                return self.list.item(i)
        return None

    def documents(self) -> dict[str, tuple[str, str]]:
        """path -> (status, detail) as shown (for tests and accessibility)."""
        out = {}
        for i in range(self.list.count()):
            item = self.list.item(i)
            out[item.data(PATH_ROLE)] = (item.data(STATUS_ROLE), item.data(DETAIL_ROLE))
        return out

    # ------------------------------------------------------------------ actions
    def selected_paths(self) -> list[str]:
        return [i.data(PATH_ROLE) for i in self.list.selectedItems()]

    def _selection_changed(self) -> None:
        self.remove_action.setEnabled(bool(self.list.selectedItems()))

    def _remove(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.remove_requested.emit(paths)

    def _menu(self, pos) -> None:
        if not self.list.itemAt(pos):
            return
        menu = QMenu(self)
        menu.addAction(self.remove_action)
        menu.exec(self.list.viewport().mapToGlobal(pos))
