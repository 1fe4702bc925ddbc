"""The library panel: every document with its status, add/remove buttons, ingestion progress.

It draws LibrarySnapshots (rows of the documents table, read on the ingest lane) and live stages
(queued, reading, embedding) from ingest events. Removal is asked for through a signal; the main
window runs it on the ingest lane.

Why a file was not added is too long for its row: the selected row's whole reason is shown,
wrapped and selectable, under the list (a keyboard reaches it: Tab into the list, arrow keys).
Files that could not be added are summed up in a note above the list that stays until it is
dismissed, or until none of them is left failed.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from PySide6.QtCore import (
    QAbstractListModel,
    QItemSelectionModel,
    QModelIndex,
    QRect,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QColor, QFont, QKeySequence, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
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
from app.core.status import DocStatus
from app.gui.resources import icon

DISPLAY_ROLE = Qt.ItemDataRole.DisplayRole
PATH_ROLE = Qt.ItemDataRole.UserRole
STATUS_ROLE = Qt.ItemDataRole.UserRole + 1
DETAIL_ROLE = Qt.ItemDataRole.UserRole + 2
REBUILD_MS = 250  # new or vanished rows are put in place at most this often
SLICE_S = 0.015  # ...in slices of at most about this long, the window's events between them
INSERT_AT_ONCE = 1000  # rows inserted in one go (the filter reads each inserted row's name)
KEYS_AT_ONCE = 2000  # sort keys made in one go
PROGRESS_MS = 100  # the progress line changes at most this often
LOOK_ROLES = [
    STATUS_ROLE,
    DETAIL_ROLE,
    Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.AccessibleDescriptionRole,
]

STATUS_WORDS = {
    DocStatus.READY: "Ready",
    DocStatus.QUEUED: "Queued",
    "reading": "Reading…",
    "embedding": "Indexing…",
    "indexing": "Reading…",
    DocStatus.INTERRUPTED: "Interrupted: add it again",
    DocStatus.SKIPPED: "Skipped",
    DocStatus.FAILED: "Failed",
    DocStatus.CANCELLED: "Cancelled",
    DocStatus.REMOVING: "Removing…",
    "resuming": "Waiting to resume",
}
# What a file left unfinished by an earlier session may be shown as until it is read again:
# stopped by closing the window (cancelled), by a crash (interrupted), or reset by a
# re-index (queued). While it is being resumed it is labelled as such, not by these.
LEFT_UNFINISHED = (DocStatus.CANCELLED, DocStatus.INTERRUPTED, DocStatus.QUEUED)
STATUS_COLORS = {
    DocStatus.READY: "#2e9d5b",
    DocStatus.FAILED: "#d9534f",
    DocStatus.SKIPPED: "#d08a1a",
    DocStatus.INTERRUPTED: "#d08a1a",
    DocStatus.CANCELLED: "#8a8a8a",
}
BUSY_COLOR = "#3d7bf0"
# Outcomes that mean a file is not in the library, with a reason worth reading in full.
NOT_ADDED = (DocStatus.FAILED, DocStatus.SKIPPED)
WITH_REASON = (DocStatus.FAILED, DocStatus.SKIPPED, DocStatus.CANCELLED, DocStatus.INTERRUPTED)
NOTE_STYLE = """
#failureNote {
    background: rgba(217, 83, 79, 0.10);
    border: 1px solid rgba(217, 83, 79, 0.55);
    border-radius: 8px;
}
#failureNote QLabel { background: transparent; border: none; }
"""
REASON_STYLE = """
#failureReason {
    border: 1px solid palette(mid);
    border-radius: 6px;
    padding: 6px 8px;
    background: palette(base);
}
#failureReason:focus { border: 1px solid palette(highlight); }
"""


def not_added_text(n: int) -> str:
    files = "1 file" if n == 1 else f"{n} files"
    return f"{files} could not be added — see the list."


def detail_text(status: str, pages: int = 0, chunks: int = 0, error: str | None = None) -> str:
    word = STATUS_WORDS.get(status, status.capitalize())
    if status == DocStatus.READY:
        bits = [word]
        if pages:
            bits.append(f"{pages} page{'s' if pages != 1 else ''}")
        bits.append(f"{chunks} passage{'s' if chunks != 1 else ''}")
        return " · ".join(bits)
    if error and status in WITH_REASON:
        return f"{word}: {error}"
    if status == "embedding" and chunks:
        return f"{word} {chunks} passages"
    return word


class _Shown(NamedTuple):
    """How a file just done is shown until the next snapshot has its row."""

    status: str
    detail: str
    tip: str


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


class DocumentModel(QAbstractListModel):
    """The documents as rows, sorted by name. The view asks for what it paints (a screenful),
    so 20,000 documents cost 20,000 list entries, not 20,000 widgets' items. A row's look
    comes from `entry(path)` (the view's table of statuses), read when it is painted.

    Rows come and go in place (`sync_to`), a bounded slice of work at a time: a sync that edits
    a few files of 20,000 costs what those files cost. The filter box's text is applied here,
    to all the names at once in Python (`refilter`), not by QSortFilterProxyModel, which asks
    every row for its name through a Python call (about 100 ms a keystroke at 20,000)."""

    def __init__(self, entry, parent=None) -> None:
        super().__init__(parent)
        self._entry = entry
        # Sorted by file name (case-insensitive), then by the whole path: that pair is a row's
        # key, kept for each of paths for bisect.
        self.paths: list[str] = []
        self._keys: list[tuple[str, str]] = []
        self._names: dict[str, str] = {}  # path -> its shown name (the filter asks for it)
        self.members: set[str] = set()  # the paths listed, for membership
        self._key_of: dict[str, tuple[str, str]] = {}  # the key of every path wanted
        # Every wanted path's key, sorted, for a new filter text (see _sorted_all)
        self._all_keys: list[tuple[str, str]] = []
        self._all_paths: set[str] = set()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.paths)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        path = self.paths[index.row()]
        if role == DISPLAY_ROLE:  # first: the filter asks every row for it
            return self._names[path]
        if role == PATH_ROLE:
            return path
        if role == Qt.ItemDataRole.EditRole:
            return self._names[path]
        status, detail, tip = self._entry(path)
        if role == STATUS_ROLE:
            return status
        if role in (DETAIL_ROLE, Qt.ItemDataRole.AccessibleDescriptionRole):
            return detail
        if role == Qt.ItemDataRole.ToolTipRole:
            return tip
        return None

    def row_of(self, path: str) -> int | None:
        if path not in self.members:
            return None
        return bisect_left(self._keys, self._key_of[path])

    def _know(self, paths, deadline: float) -> bool:
        """Sort keys and shown names of `paths` not met yet (20,000 new names: a few slices);
        False if `deadline` passed first."""
        keys = self._key_of
        unknown = [p for p in paths if p not in keys]
        for i in range(0, len(unknown), KEYS_AT_ONCE):
            for p in unknown[i : i + KEYS_AT_ONCE]:
                name = os.path.basename(p)
                keys[p] = (name.lower(), p)
                self._names[p] = display(name)
            if time.perf_counter() > deadline:
                return False
        return True

    def _matching(self, want, needle: str):
        if not needle:
            return want
        keys = self._key_of
        return {p for p in want if needle in keys[p][0]}

    def refilter(self, want, needle: str, before: str = "") -> None:
        """List the paths of `want` whose file name contains `needle` (lower case), at once: the
        list is reset (a new filter text changes most rows). `before`: the text it replaces;
        a longer one only takes rows away, so it looks among those listed."""
        narrower = before and before in needle
        candidates = self._keys if narrower else self._sorted_all(want)
        shown = [k for k in candidates if needle in k[0]] if needle else list(candidates)
        self.beginResetModel()
        self._keys = shown
        self.paths = [k[1] for k in shown]
        self.members = set(self.paths)
        self.endResetModel()
        self._forget_all_but(want)

    def _sorted_all(self, want) -> list[tuple[str, str]]:
        """The keys of every path in `want`, sorted: the listed rows' when they are all of
        them, else kept from the last time for as long as `want` is the same."""
        if want != self._all_paths:
            if self.members == want:
                self._all_keys = list(self._keys)
            else:
                self._know(want, float("inf"))
                self._all_keys = sorted(self._key_of[p] for p in want)
            self._all_paths = set(want)
        return self._all_keys

    def _forget_all_but(self, want) -> None:
        keys = self._key_of
        if len(keys) > len(want):  # paths that left
            for p in keys.keys() - want:
                del keys[p]
                del self._names[p]

    def sync_to(self, want, deadline: float, needle: str = "") -> bool:
        """Remove the rows not in `want` (or whose name does not contain `needle`) and insert
        those missing, in sorted place, until time.perf_counter() passes `deadline`; True once
        the rows are exactly those."""
        every = want
        if not self._know(every, deadline):
            return False
        want = self._matching(every, needle)
        gone = self.members - want
        if gone:
            rows = sorted((self.row_of(p) for p in gone), reverse=True)
            for first, last in _runs_descending(rows):
                self.beginRemoveRows(QModelIndex(), first, last)
                self.members.difference_update(self.paths[first : last + 1])
                del self.paths[first : last + 1]
                del self._keys[first : last + 1]
                self.endRemoveRows()
                if time.perf_counter() > deadline:
                    return False  # (the next slice goes on from here)
        keys = self._key_of
        new = sorted(keys[p] for p in want - self.members)
        at = j = 0
        while j < len(new):
            # The next run: the new keys that all go before the same listed row
            at = bisect_left(self._keys, new[j], at)
            end = len(new) if at == len(self._keys) else bisect_left(new, self._keys[at], j)
            run = new[j : min(end, j + INSERT_AT_ONCE)]
            j += len(run)
            self.beginInsertRows(QModelIndex(), at, at + len(run) - 1)
            paths = [k[1] for k in run]
            self._keys[at:at] = run
            self.paths[at:at] = paths
            self.members.update(paths)
            self.endInsertRows()
            at += len(run)
            if j < len(new) and time.perf_counter() > deadline:
                return False
        self._forget_all_but(every)
        return True

    def changed(self, path: str | None = None) -> None:
        """A row's look changed (None: any row's). Its name did not: the filter is not asked
        again."""
        if not self.paths:
            return
        if path is None:
            self.dataChanged.emit(self.index(0), self.index(len(self.paths) - 1), LOOK_ROLES)
        else:
            row = self.row_of(path)
            if row is not None:
                i = self.index(row)
                self.dataChanged.emit(i, i, LOOK_ROLES)


def _runs_descending(rows: list[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive numbers in `rows` (sorted high to low), the
    highest run first, so removing one run leaves the next one's numbers as they were."""
    i = 0
    while i < len(rows):
        last = first = rows[i]
        i += 1
        while i < len(rows) and rows[i] == first - 1:
            first = rows[i]
            i += 1
        yield first, last


class _Row:
    """One row as the old item-based list handed it out (tests and callers use item_for)."""

    def __init__(self, view: LibraryView, path: str) -> None:
        self._view, self._path = view, path

    def _index(self) -> QModelIndex:
        return self._view.index_for(self._path)

    def data(self, role: int):
        return self._index().data(role)

    def toolTip(self) -> str:
        return self._index().data(Qt.ItemDataRole.ToolTipRole) or ""

    def text(self) -> str:
        return self._index().data(Qt.ItemDataRole.DisplayRole) or ""

    def isSelected(self) -> bool:
        return self._view.list.selectionModel().isSelected(self._index())

    def setSelected(self, selected: bool) -> None:
        flag = QItemSelectionModel.SelectionFlag
        self._view.list.selectionModel().select(
            self._index(), flag.Select if selected else flag.Deselect
        )


class DocumentList(QListView):
    """The list of documents; item(row) and count() as the item-based list had them."""

    def __init__(self, view: LibraryView) -> None:
        super().__init__()
        self._view = view

    def count(self) -> int:
        return self.model().rowCount() if self.model() else 0

    def item(self, row: int) -> _Row | None:
        index = self.model().index(row, 0)
        return _Row(self._view, index.data(PATH_ROLE)) if index.isValid() else None


class LibraryView(QWidget):
    add_files = Signal()
    add_folder = Signal()
    remove_requested = Signal(list)  # paths
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._rows: dict = {}  # path -> DocumentRow, or _Shown for a file done since
        self._live: dict[str, tuple[str, str]] = {}  # path -> status, detail (while ingesting)
        self._reasons: dict[str, str] = {}  # path -> why it is not (fully) in the library
        self._new_failures: set[str] = set()  # not added in the current run, not yet summed up
        self._noted: set[str] = set()  # what the failure note counts
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

        # The summary of a run that could not add some files: stays until dismissed.
        self.failure_note = QFrame()
        self.failure_note.setObjectName("failureNote")
        self.failure_note.setStyleSheet(NOTE_STYLE)
        note = QHBoxLayout(self.failure_note)
        note.setContentsMargins(8, 6, 4, 6)
        note.setSpacing(6)
        badge = QLabel()
        badge.setPixmap(icon("warning", "#d9534f").pixmap(18, 18))
        badge.setAlignment(Qt.AlignmentFlag.AlignTop)
        note.addWidget(badge)
        self.failure_label = QLabel()
        self.failure_label.setWordWrap(True)
        note.addWidget(self.failure_label, 1)
        self.failure_show = QPushButton("Show")
        self.failure_show.setToolTip("Select the first file that could not be added")
        self.failure_show.setAccessibleName("Show the files that could not be added")
        self.failure_show.clicked.connect(self.show_first_failure)
        note.addWidget(self.failure_show, 0, Qt.AlignmentFlag.AlignTop)
        self.failure_dismiss = QToolButton()
        self.failure_dismiss.setText("✕")
        self.failure_dismiss.setAutoRaise(True)
        self.failure_dismiss.setToolTip("Dismiss")
        self.failure_dismiss.setAccessibleName("Dismiss this message")
        self.failure_dismiss.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.failure_dismiss.clicked.connect(self.dismiss_failures)
        note.addWidget(self.failure_dismiss, 0, Qt.AlignmentFlag.AlignTop)
        self.failure_note.hide()
        layout.addWidget(self.failure_note)

        # Shown when the library is large enough to look for one document by name.
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter documents by name")
        self.filter.setAccessibleName("Filter the documents by name")
        self.filter.setClearButtonEnabled(True)
        self.filter.hide()
        layout.addWidget(self.filter)

        self.stack = QStackedWidget()
        self.model = DocumentModel(self._entry, self)
        # A pass-through in C++: the view lays out 20,000 rows asking the proxy, not Python.
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setDynamicSortFilter(False)
        self._needle = ""  # the filter box's text, lower case
        self.filter.textChanged.connect(self._filter_changed)
        self.list = DocumentList(self)
        self.list.setModel(self.proxy)
        self.list.setObjectName("libraryList")
        self.list.setAccessibleName("Documents in the library")
        self.list.setItemDelegate(DocumentDelegate(self.list))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setUniformItemSizes(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.selectionModel().selectionChanged.connect(self._selection_changed)
        self.list.selectionModel().currentChanged.connect(self._show_reason)
        self._rebuild_timer = QTimer(self)
        self._rebuild_timer.setSingleShot(True)
        self._rebuild_timer.setInterval(REBUILD_MS)
        self._rebuild_timer.timeout.connect(self._rebuild)  # a slice at a time
        self.placeholder = QLabel("No documents yet.\nDrop files anywhere on this window.")
        self.placeholder.setObjectName("mutedLabel")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.list)
        layout.addWidget(self.stack, 1)

        # The selected file's whole reason, wrapped; selectable (and copyable) by mouse or keys.
        self.reason = QLabel()
        self.reason.setObjectName("failureReason")
        self.reason.setStyleSheet(REASON_STYLE)
        self.reason.setWordWrap(True)
        self.reason.setTextFormat(Qt.TextFormat.PlainText)
        self.reason.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.reason.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # a Tab stop, to select by keys
        self.reason.setAccessibleName("Why the selected file was not added")
        self.reason.hide()
        layout.addWidget(self.reason)
        QWidget.setTabOrder(self.list, self.reason)

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
        self.progress_label.setWordWrap(True)  # "Adding 6 of 6 · page 240 of 2,415 · …": wraps
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
        self._progress_next: tuple[int, int, str] | None = None  # not shown yet
        self._progress_timer = QTimer(self)
        self._progress_timer.setSingleShot(True)
        self._progress_timer.setInterval(PROGRESS_MS)
        self._progress_timer.timeout.connect(self._progress_tick)

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
        rows = {d.path: d for d in snapshot.documents}
        self._rows = rows
        self._reasons = {
            d.path: d.error for d in snapshot.documents if d.error and d.status in WITH_REASON
        }
        # Files removed, or added after all, leave the note; with none left it goes.
        self._noted = {p for p in self._noted if self._status_of(p) in NOT_ADDED}
        self._update_note()
        ready = sum(1 for d in snapshot.documents if d.status == DocStatus.READY)
        self.count_label.setText(f"{ready} ready" if snapshot.documents else "")
        self._render()

    def mark_queued(self, paths: list[str]) -> None:
        for p in paths:
            if Path(p).is_file():
                self._live[str(p)] = (DocStatus.QUEUED, STATUS_WORDS[DocStatus.QUEUED])
        self._render()

    def unfinished_paths(self) -> list[str]:
        """Documents an earlier run left half-done or a re-index reset: the start resumes them
        whether or not they were still asked for."""
        return [p for p in self._rows if self._status_of(p) in LEFT_UNFINISHED[1:]]

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
                status = self._status_of(f) if f in self._rows else DocStatus.QUEUED
                if status in LEFT_UNFINISHED and f not in self._live and os.path.isfile(f):
                    self._live[f] = ("resuming", STATUS_WORDS["resuming"])
        self._render()

    def set_live(self, path: str, status: str, chunks: int = 0) -> None:
        self._live[path] = (status, detail_text(status, chunks=chunks))
        self._update_item(path)

    def file_moved(self, path: str, old_path: str) -> None:
        """A document follows its renamed or moved file (the next snapshot confirms it)."""
        row = self._rows.pop(old_path, None)
        self._live.pop(old_path, None)
        if row is not None:
            self._rows[path] = row
        self._schedule_rebuild()

    def file_done(
        self, path: str, status: str, pages: int = 0, chunks: int = 0, error: str | None = None
    ) -> None:
        """One file is finished: show its outcome until the next snapshot confirms it."""
        self._live.pop(path, None)
        tip = display(path) + (f"\n\n{error}" if error else "")
        if status == "removed":
            self._rows.pop(path, None)
            self._reasons.pop(path, None)
            self._noted.discard(path)
            self._schedule_rebuild()
            self._update_note()
            return
        self._rows[path] = _Shown(status, detail_text(status, pages, chunks, error), tip)
        if error and status in WITH_REASON:
            self._reasons[path] = error
        else:
            self._reasons.pop(path, None)
        if status in NOT_ADDED:
            self._new_failures.add(path)
        else:
            self._new_failures.discard(path)
            self._noted.discard(path)
        self._update_item(path)
        self._update_note()

    # ------------------------------------------------------------------ failures
    def show_failures(self) -> int:
        """An ingest run ended: sum up the files it could not add in the note (which stays
        until dismissed). Returns how many the note now counts."""
        self._noted |= {p for p in self._new_failures if self._entry(p)[0] in NOT_ADDED}
        self._new_failures.clear()
        self._update_note()
        return len(self._noted)

    def dismiss_failures(self) -> None:
        focus = QApplication.focusWidget()
        had_focus = focus is not None and self.failure_note.isAncestorOf(focus)
        self._noted.clear()
        self._update_note()
        if had_focus:
            self.list.setFocus()

    def failure_text(self) -> str:
        return self.failure_label.text() if not self.failure_note.isHidden() else ""

    def show_first_failure(self) -> None:
        """Select the first file the note counts, so its reason shows under the list."""
        self._rebuild_now()
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if index.data(PATH_ROLE) in self._noted:
                self.list.selectionModel().setCurrentIndex(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                )  # selects it alone
                self.list.scrollTo(index)
                self.list.setFocus()
                return

    def _update_note(self) -> None:
        self.failure_label.setText(not_added_text(len(self._noted)))
        self.failure_note.setVisible(bool(self._noted))

    def reason_for(self, path: str) -> str:
        """The whole sentence saying why `path` is not (fully) in the library ('' if none)."""
        status = self._entry(path)[0]
        return self._reasons.get(path, "") if status in WITH_REASON else ""

    def clear_live(self, path: str | None = None) -> None:
        if path is None:
            self._live.clear()
        else:
            self._live.pop(path, None)
        self._render()

    def set_progress(self, done: int, total: int, text: str) -> None:
        """Shown at most every PROGRESS_MS (the latest values): a sync finishing hundreds of
        files a second would otherwise lay the window out again for each (the label wraps)."""
        self._progress_next = (done, total, text)
        self.progress_box.show()
        if not self._progress_timer.isActive():
            self._show_progress()
            self._progress_timer.start()  # later calls wait for it, then the latest is shown

    def _show_progress(self) -> None:
        if self._progress_next is None:
            return
        done, total, text = self._progress_next
        self._progress_next = None
        self.progress.setRange(0, max(1, total) if total else 0)
        self.progress.setValue(done)
        if text != self.progress_label.text():
            self.progress_label.setText(text)

    def _progress_tick(self) -> None:
        if self._progress_next is not None:
            self._show_progress()
            self._progress_timer.start()

    def set_progress_note(self, text: str) -> None:
        """A word in place of the progress line ("Cancelling…"), kept over values not yet
        shown."""
        self._progress_next = None
        self.progress_label.setText(text)

    def hide_progress(self) -> None:
        self._progress_timer.stop()
        self._progress_next = None
        self.progress_box.hide()

    # ------------------------------------------------------------------ drawing
    def _entry(self, path: str) -> tuple[str, str, str]:
        row = self._rows.get(path)
        if row is None:
            status, detail, tip = DocStatus.QUEUED, "", display(path)
        elif isinstance(row, _Shown):
            status, detail, tip = row
        else:
            status = row.status
            detail = detail_text(row.status, row.pages, row.chunks, row.error)
            tip = display(row.path) + (f"\n\n{row.error}" if row.error else "")
        if path in self._live:
            status, detail = self._live[path]
        return status, detail, tip

    def _status_of(self, path: str) -> str:
        row = self._rows.get(path)
        if row is None:
            return ""
        return row.status

    def _render(self) -> None:
        """The rows' looks changed; rows that came or went are put in place soon (at most
        every REBUILD_MS, in slices), so a sync that moves thousands of files updates the list
        a few times, not once per file."""
        self.model.changed()
        self._schedule_rebuild()
        self._show_reason()

    def _schedule_rebuild(self) -> None:
        if not self._rebuild_timer.isActive():
            self._rebuild_timer.start(REBUILD_MS)

    def _rebuild_now(self) -> None:
        """Put every row in place at once (callers that read the list want it whole)."""
        if self._rebuild_timer.isActive():
            self._rebuild_timer.stop()
        self._rebuild(deadline=float("inf"))

    def _rebuild(self, deadline: float | None = None) -> None:
        """Rows in and out until the list shows what _rows and _live hold; one slice of work,
        the rest after the window's pending events. Selection and the current row stay on
        their documents (the rows move, the model is not reset)."""
        want = self._rows.keys() | self._live.keys()
        if deadline is None:
            deadline = time.perf_counter() + SLICE_S
        if not self.model.sync_to(want, deadline, self._needle):
            self._rebuild_timer.start(0)
        self._show_counts(len(want))

    def _show_counts(self, total: int) -> None:
        self.filter.setVisible(total >= FILTER_FROM or bool(self.filter.text()))
        self.stack.setCurrentWidget(self.list if total else self.placeholder)
        self._selection_changed()

    def _filter_changed(self, text: str) -> None:
        """List the documents whose names hold `text` (any case); the selected and current
        documents stay so where they are still listed."""
        before, self._needle = self._needle, text.lower()
        if self._rebuild_timer.isActive():
            self._rebuild_timer.stop()
        selected = set(self.selected_paths(flush=False))
        current = self.list.currentIndex().data(PATH_ROLE)
        want = self._rows.keys() | self._live.keys()
        self.model.refilter(want, self._needle, before)
        sel = self.list.selectionModel()
        flag = QItemSelectionModel.SelectionFlag
        with _signals_blocked(sel):
            if current is not None and current in self.model.members:
                sel.setCurrentIndex(self.index_for(current), flag.NoUpdate)
            for p in selected & self.model.members:
                sel.select(self.index_for(p), flag.Select)
        self._show_counts(len(want))
        self._schedule_rebuild()  # rows still on their way are put in place as usual

    def _update_item(self, path: str) -> None:
        if path in self.model.members:
            self.model.changed(path)
            self._show_reason()
        else:
            self._schedule_rebuild()
            self._show_reason()

    def index_for(self, path: str) -> QModelIndex:
        """The list's index of `path` (invalid when it is filtered out or not listed)."""
        row = self.model.row_of(path)
        if row is None:
            return QModelIndex()
        return self.proxy.mapFromSource(self.model.index(row))

    def item_for(self, path: str) -> _Row | None:
        self._rebuild_now()
        return _Row(self, path) if self.index_for(path).isValid() else None

    def documents(self) -> dict[str, tuple[str, str]]:
        """path -> (status, detail) as shown (for tests and accessibility)."""
        self._rebuild_now()
        return {p: self._entry(p)[:2] for p in self._rows.keys() | self._live.keys()}

    # ------------------------------------------------------------------ actions
    def selected_paths(self, flush: bool = True) -> list[str]:
        if flush:
            self._rebuild_now()
        rows = self.list.selectionModel().selectedRows()
        return [i.data(PATH_ROLE) for i in sorted(rows, key=lambda i: i.row())]

    def _selection_changed(self, *_args) -> None:
        self.remove_action.setEnabled(self.list.selectionModel().hasSelection())
        self._show_reason()

    def _reason_path(self) -> str | None:
        """The row whose reason is shown: the current row if it is selected, else the only
        selected row."""
        sel = self.list.selectionModel()
        current = self.list.currentIndex()
        if current.isValid() and sel.isSelected(current):
            return current.data(PATH_ROLE)
        selected = sel.selectedRows()
        return selected[0].data(PATH_ROLE) if len(selected) == 1 else None

    def _show_reason(self, *_args) -> None:
        path = self._reason_path()
        reason = self.reason_for(path) if path else ""
        if reason:
            word = STATUS_WORDS.get(self._entry(path)[0], "")
            self.reason.setText(f"{word}: {reason}" if word else reason)
        self.reason.setVisible(bool(reason))

    def _remove(self) -> None:
        paths = self.selected_paths()
        if paths:
            self.remove_requested.emit(paths)

    def _menu(self, pos) -> None:
        if not self.list.indexAt(pos).isValid():
            return
        menu = QMenu(self)
        menu.addAction(self.remove_action)
        menu.exec(self.list.viewport().mapToGlobal(pos))


FILTER_FROM = 30  # documents from which the filter box shows


class _signals_blocked:
    def __init__(self, obj) -> None:
        self.obj = obj

    def __enter__(self):
        self._was = self.obj.blockSignals(True)

    def __exit__(self, *exc) -> None:
        self.obj.blockSignals(self._was)
