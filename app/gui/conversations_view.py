"""The list of conversations: new, search, rename, delete (with confirmation). Storage is the
chat controller's."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui.resources import icon

ID_ROLE = Qt.ItemDataRole.UserRole


class ConversationsView(QWidget):
    selected = Signal(object)  # conversation id, or None for a new (not yet saved) one
    new_requested = Signal()
    rename_requested = Signal(int)
    delete_requested = Signal(int)
    search_changed = Signal(str)  # what to look for in the chats ('' shows them all)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        head = QHBoxLayout()
        title = QLabel("Conversations")
        title.setObjectName("sectionTitle")
        head.addWidget(title)
        head.addStretch()
        layout.addLayout(head)
        self.new_button = QPushButton(icon("add"), "New chat")
        self.new_button.setObjectName("newChatButton")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)
        layout.addWidget(self.new_button)
        self.search = QLineEdit()
        self.search.setObjectName("chatSearch")
        self.search.setPlaceholderText("Search chats")
        self.search.setAccessibleName("Search chats")
        self.search.setToolTip("Show the chats whose title or messages contain these words")
        self.search.setClearButtonEnabled(True)
        self._search_timer = QTimer(self)  # one search when typing pauses, not one per key
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(200)
        self._search_timer.timeout.connect(self._emit_search)
        self.search.textChanged.connect(self._typed)
        layout.addWidget(self.search)
        self.empty_search = QLabel("No chat contains these words.")
        self.empty_search.setObjectName("mutedLabel")
        self.empty_search.setWordWrap(True)
        self.empty_search.hide()
        layout.addWidget(self.empty_search)
        self.list = QListWidget()
        self.list.setObjectName("conversationList")
        self.list.setAccessibleName("Conversations")
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        layout.addWidget(self.list, 1)

        self.rename_action = QAction(icon("edit"), "&Rename…", self)
        self.rename_action.setShortcut(QKeySequence(Qt.Key.Key_F2))
        self.rename_action.triggered.connect(self._rename)
        self.delete_action = QAction(icon("trash"), "&Delete…", self)
        self.delete_action.setShortcut(QKeySequence.StandardKey.Delete)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.triggered.connect(self._delete)
        self.list.addAction(self.delete_action)
        self._quiet = False

    def _typed(self, _text: str) -> None:
        self._search_timer.start()

    def _emit_search(self) -> None:
        self.search_changed.emit(self.query())

    def query(self) -> str:
        return self.search.text().strip()

    def set_conversations(self, conversations, current: int | None, answering=()) -> None:
        """List `conversations`; those in `answering` have an answer being written."""
        self._quiet = True
        self.list.clear()
        for conv in conversations:
            busy = conv.id in answering
            item = QListWidgetItem(
                icon("chat"), f"{conv.title} · answering…" if busy else conv.title
            )
            item.setData(ID_ROLE, conv.id)
            item.setToolTip(conv.title)
            self.list.addItem(item)
            if conv.id == current:
                self.list.setCurrentItem(item)
        self._quiet = False
        self.empty_search.setVisible(bool(self.query()) and not conversations)
        self._update_actions()

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item else None

    def titles(self) -> list[str]:
        return [self.list.item(i).toolTip() for i in range(self.list.count())]

    def _update_actions(self) -> None:
        has = self.current_id() is not None
        self.rename_action.setEnabled(has)
        self.delete_action.setEnabled(has)

    def _current_changed(self, current, _previous) -> None:
        self._update_actions()
        if not self._quiet:
            self.selected.emit(current.data(ID_ROLE) if current else None)

    def _rename(self) -> None:
        if (cid := self.current_id()) is not None:
            self.rename_requested.emit(cid)

    def _delete(self) -> None:
        if (cid := self.current_id()) is not None:
            self.delete_requested.emit(cid)

    def _menu(self, pos) -> None:
        if not self.list.itemAt(pos):
            return
        menu = QMenu(self)
        menu.addAction(self.rename_action)
        menu.addAction(self.delete_action)
        menu.exec(self.list.viewport().mapToGlobal(pos))
