"""The main window: the layout, the menus, drag and drop, settings and closing.

Two controllers do the work behind the views: ChatController (conversations, answers) and
LibraryController (adding, removing, re-indexing, progress). Everything slow happens on a lane
(lanes.py). The window is built and shown before any model loads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.gui.chat_controller import ChatController
from app.gui.chat_view import ChatView, privacy_sentence
from app.gui.conversations_view import ConversationsView
from app.gui.drops import DropOverlay, as_copy
from app.gui.ingest_progress import duration
from app.gui.lanes import IngestLane, ModelLane
from app.gui.library_controller import LibraryController
from app.gui.library_view import LibraryView
from app.gui.resources import icon

log = logging.getLogger(__name__)

# A change to any of these drops the engine and builds it again (a local model or a server's).
MODEL_KEYS = (
    "llm_path",
    "gpu_layers",
    "context_size",
    "llm_server",
    "llm_api_key",
    "llm_model",
    "allow_insecure_http",
)


class MainWindow(QMainWindow):
    closing = Signal()  # the window has started to close (it no longer takes requests)

    def __init__(self, services) -> None:
        super().__init__()
        self.services = services
        self.setWindowTitle("Confidant")
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.model_status = "Model loads with the first question"
        self._said_note: str | None = None  # the model's load note, once said in the bar
        self._asked_missing: set[str] = set()  # folders whose removal was asked this session
        self._closing = False
        self.lanes_stopped = False
        self.viewer = None

        self.model_lane = ModelLane(services, self)
        self.ingest_lane = IngestLane(services, self)
        self._build()
        self.chats = ChatController(services, self.model_lane, self.chat, self.conversations, self)
        self.chats.model_status.connect(self._set_model_status)
        self.chats.busy_changed.connect(self._update_actions)
        self.documents = LibraryController(services, self.ingest_lane, self.library, self)
        self.documents.snapshot_changed.connect(self._show_snapshot)
        self.documents.message.connect(self.statusBar().showMessage)
        self.documents.failed.connect(self._show_failure)
        self.documents.reindex_offered.connect(self._offer_reindex)
        self.documents.store_trouble.connect(self._store_trouble)
        self.documents.attach_sources(self.sources)  # folders kept in sync (sources_view.py)
        self.documents.prune_offered.connect(self._confirm_missing_folder)
        # A team server that cannot be reached is said across the top (server_notice.py).
        self.ingest_lane.event.connect(self._team_event)
        self.model_lane.event.connect(self._team_event)
        self._build_actions()
        self._restore()

    @property
    def conversation(self) -> int | None:
        """The conversation on screen (None: a new one, not stored until its first question)."""
        return self.chats.conversation

    # ================================================================== layout
    def _build(self) -> None:
        self.conversations = ConversationsView()
        self.conversations.selected.connect(self.open_conversation)
        self.conversations.new_requested.connect(self.new_conversation)
        self.conversations.rename_requested.connect(self.rename_conversation)
        self.conversations.delete_requested.connect(self.delete_conversation)
        self.library = LibraryView()
        self.library.add_files.connect(self.choose_files)
        self.library.add_folder.connect(self.choose_folder)
        self.library.remove_requested.connect(self.remove_documents)

        sidebar = QFrame()
        sidebar.setObjectName("sidebar")
        side = QVBoxLayout(sidebar)
        side.setContentsMargins(14, 14, 14, 12)
        self.side_split = QSplitter(Qt.Orientation.Vertical)
        self.side_split.setChildrenCollapsible(False)
        self.side_split.setHandleWidth(12)
        self.side_split.addWidget(self.conversations)
        self.side_split.addWidget(self.library)
        self.side_split.setSizes([300, 400])
        side.addWidget(self.side_split)
        from app.gui.sources_view import SourcesView

        self.sources = SourcesView()  # hidden until a folder is kept in sync
        side.addWidget(self.sources)

        self.chat = ChatView()
        self.chat.set_where(privacy_sentence(self.services.settings))
        self.chat.setObjectName("chatPane")
        self.chat.send_requested.connect(self.ask)
        self.chat.stop_requested.connect(self.stop)
        self.chat.regenerate_requested.connect(self.regenerate)
        self.chat.source_clicked.connect(self.open_source)
        self.chat.add_files.connect(self.choose_files)
        self.chat.add_folder.connect(self.choose_folder)

        self.split = QSplitter(Qt.Orientation.Horizontal)
        self.split.setChildrenCollapsible(False)
        self.split.setHandleWidth(1)
        self.split.addWidget(sidebar)
        self.split.addWidget(self.chat)
        self.split.setStretchFactor(1, 1)
        self.split.setSizes([300, 800])
        sidebar.setMinimumWidth(240)
        from app.gui.server_notice import ServerNotice

        self.server_notice = ServerNotice()
        self.server_notice.settings_requested.connect(self.open_settings)
        self.server_notice.retry_requested.connect(self.retry_servers)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.server_notice)
        column.addWidget(self.split, 1)
        self.setCentralWidget(central)
        self.overlay = DropOverlay(self)

        bar = self.statusBar()
        bar.setSizeGripEnabled(False)
        self.model_label = QLabel(self.model_status)
        self.model_label.setObjectName("statusModel")
        self.library_label = QLabel()
        self.library_label.setObjectName("statusLibrary")
        bar.addPermanentWidget(self.library_label)
        bar.addPermanentWidget(self.model_label)
        self.resize(1180, 780)

    def tab_chain(self) -> list[QWidget]:
        """The order Tab walks the window, as people read it: the question box, Send, New chat,
        the chats' search and list, the library and its buttons, then the messages top to
        bottom (so Shift+Tab from the question box goes up through the last answer's buttons
        and sources). Built on each press: messages and their buttons come and go."""
        return [
            self.chat.input,
            self.chat.send_button,
            self.conversations.new_button,
            self.conversations.search,
            self.conversations.list,
            self.library.failure_show,
            self.library.failure_dismiss,
            self.library.list,
            self.library.reason,
            self.library.cancel_button,
            self.library.files_button,
            self.library.folder_button,
            self.library.remove_button,
            *self.chat.focus_chain(),
        ]

    def focusNextPrevChild(self, next: bool) -> bool:
        # Widgets hand Tab up to their window; Qt's own chain (creation order, bent by
        # compound widgets such as the question box) put every message before the sidebar.
        chain = [
            w
            for w in self.tab_chain()
            if w.isVisible() and w.isEnabled() and w.focusPolicy() & Qt.FocusPolicy.TabFocus
        ]
        focus = QApplication.focusWidget()
        at = None
        while focus is not None and at is None:
            at = chain.index(focus) if focus in chain else None
            focus = focus.parentWidget() if at is None else focus
        if at is None or not chain:
            return super().focusNextPrevChild(next)
        next_index = (at + (1 if next else -1)) % len(chain)
        reason = Qt.FocusReason.TabFocusReason if next else Qt.FocusReason.BacktabFocusReason
        chain[next_index].setFocus(reason)
        return True

    def _build_actions(self) -> None:
        def act(text, slot, shortcut=None, icon_name=None, context=None):
            action = QAction(text, self)
            if icon_name:
                action.setIcon(icon(icon_name))
            if shortcut is not None:
                action.setShortcut(QKeySequence(shortcut))
            if context is not None:
                action.setShortcutContext(context)
            action.triggered.connect(slot)
            self.addAction(action)
            return action

        self.new_action = act(
            "&New chat", self.new_conversation, QKeySequence.StandardKey.New, "add"
        )
        self.files_action = act(
            "&Add files…", self.choose_files, QKeySequence.StandardKey.Open, "add"
        )
        self.folder_action = act("Add f&older…", self.choose_folder, "Ctrl+Shift+O", "folder")
        self.settings_action = act("&Settings…", self.open_settings, "Ctrl+,", "settings")
        self.quit_action = act("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.stop_action = act("&Stop answer", self.stop, "Esc", "stop")
        self.regen_action = act("&Regenerate answer", self.regenerate, "Ctrl+R", "regenerate")
        self.focus_action = act("Ask a &question", self.chat.input.setFocus, "Ctrl+L")
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)

        menu = self.menuBar().addMenu("&File")
        for a in (
            self.files_action,
            self.folder_action,
            None,
            self.settings_action,
            None,
            self.quit_action,
        ):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu = self.menuBar().addMenu("&Conversation")
        for a in (
            self.new_action,
            self.conversations.rename_action,
            self.conversations.delete_action,
            None,
            self.focus_action,
            self.stop_action,
            self.regen_action,
        ):
            menu.addSeparator() if a is None else menu.addAction(a)
        menu = self.menuBar().addMenu("&Library")
        for a in (self.files_action, self.folder_action, self.library.remove_action):
            menu.addAction(a)
        self.about_action = act("&About Confidant", self.open_about)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.menuBar().addMenu("&Help").addAction(self.about_action)
        self.addAction(self.conversations.rename_action)
        self._update_actions()

    def _update_actions(self) -> None:
        self.stop_action.setEnabled(self.chats.busy)
        self.regen_action.setEnabled(self.chats.can_regenerate())

    # ================================================================== state
    def _restore(self) -> None:
        history = self.services.history
        geometry = history.get_state("window/geometry")
        if geometry:
            self.restoreGeometry(QByteArray.fromBase64(geometry.encode()))
        for key, splitter in (("window/split", self.split), ("window/side_split", self.side_split)):
            state = history.get_state(key)
            if state:
                splitter.restoreState(QByteArray.fromBase64(state.encode()))
        last = history.get_state("last_conversation")
        ids = {c.id for c in history.conversations()}
        self.open_conversation(int(last) if last and last.isdigit() and int(last) in ids else None)
        self.documents.refresh()  # the documents come back as a snapshot from the lane

    def _save_state(self) -> None:
        history = self.services.history
        history.set_state("window/geometry", bytes(self.saveGeometry().toBase64()).decode())
        history.set_state("window/split", bytes(self.split.saveState().toBase64()).decode())
        history.set_state(
            "window/side_split", bytes(self.side_split.saveState().toBase64()).decode()
        )
        history.set_state("last_conversation", str(self.conversation or ""))

    def start_background_work(self) -> None:
        """After the window is on screen: load the model and the embedder, with visible status."""
        self._set_model_status("Loading model…")
        self.model_lane.preload()
        self.ingest_lane.warm_up()
        self.documents.resume()
        self.documents.sync()  # every start: what changed in the folders while it was closed

    # ================================================================== conversations
    def open_conversation(self, conv_id: int | None) -> None:
        self.chats.open(conv_id)

    def new_conversation(self) -> None:
        self.chats.new()

    def rename_conversation(self, conv_id: int) -> None:
        current = self.chats.title_of(conv_id)
        title, ok = QInputDialog.getText(self, "Rename conversation", "Name:", text=current)
        if ok:
            self.chats.rename(conv_id, title)

    def delete_conversation(self, conv_id: int) -> None:
        title = self.chats.title_of(conv_id)
        if self._confirm(
            "Delete conversation",
            f"Delete the conversation “{title}” and all its messages? This cannot be undone.",
        ):
            self.chats.delete(conv_id)

    # ================================================================== asking
    def ask(self, question: str) -> None:
        self.chats.ask(question)

    def stop(self) -> None:
        self.chats.stop()

    def regenerate(self) -> None:
        self.chats.regenerate()

    def _set_model_status(self, text: str, tooltip: str | None = None) -> None:
        """The status bar's model label. A note from the load (a chat template replaced, the
        model partly on the processor) is marked on the label and said once in the bar."""
        self.model_status = text
        self.model_label.setText(f"⚠ {text}" if tooltip else text)
        self.model_label.setToolTip(tooltip or "")
        if tooltip and tooltip != self._said_note:
            self._said_note = tooltip
            self.statusBar().showMessage(tooltip, 20000)

    # ================================================================== team servers
    def _team_event(self, job, event) -> None:
        """A lane's word on a team server: down (say so), or answering again (clear it)."""
        from app.gui.lanes import LibrarySnapshot, ModelReady, ServerDown

        if self._closing:
            return
        if isinstance(event, ServerDown):
            self.server_notice.show_down(event.which, event.message, self.services.settings.locked)
        elif isinstance(event, LibrarySnapshot):
            self.server_notice.clear("library")
        elif isinstance(event, ModelReady):
            self.server_notice.clear("model")

    def retry_servers(self) -> None:
        """Try the servers the notice names again (on their lanes: nothing waits here)."""
        down = set(self.server_notice.down)
        if "library" in down:
            self.documents.refresh()
            self.documents.sync()
        if "model" in down and not self.model_lane.busy():
            self._set_model_status("Loading model…")
            self.model_lane.preload()

    # ================================================================== library
    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(
            self,
            "Add files to your library",
            str(Path.home()),
            "Documents (*.pdf *.docx *.txt *.md *.html *.htm *.csv *.rst);;All files (*)",
        )
        if paths:
            self.add_paths(paths)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Add a folder to your library", str(Path.home())
        )
        if path:
            self.add_paths([path])

    def add_paths(self, paths: list[str]):
        return self.documents.add(paths)

    def cancel_ingest(self) -> None:
        self.documents.cancel()

    def remove_documents(self, paths: list[str]) -> None:
        if not paths:
            return
        what = f"“{Path(paths[0]).name}”" if len(paths) == 1 else f"these {len(paths)} documents"
        if self._confirm(
            "Remove from library",
            f"Remove {what} from the library? The files themselves stay where they are.",
        ):
            self.documents.remove(paths)

    def _show_snapshot(self, snapshot) -> None:
        n = self.documents.ready_count
        self.chat.set_library(n)
        self.library_label.setText(
            f"{n} document{'s' if n != 1 else ''} · {snapshot.chunks} passage"
            f"{'s' if snapshot.chunks != 1 else ''}"
        )

    def _confirm_missing_folder(self, folder: str, sentence: str) -> None:
        """A folder kept in sync is gone (or emptied): its documents go only if the user says
        so, once per session and folder."""
        if folder in self._asked_missing:
            return
        self._asked_missing.add(folder)
        if self._confirm(
            "A folder is missing",
            f"{sentence}\n\nRemove its documents from the library now?",
            no="No",
        ):
            self.documents.sync([folder], prune=True)

    def _confirm(self, title: str, text: str, no: str = "Cancel") -> bool:
        """Yes or `no` (Cancel by default, the safe choice), asked in a dialog."""
        button = QMessageBox.StandardButton
        other = getattr(button, no)
        return QMessageBox.question(self, title, text, button.Yes | other, other) == button.Yes

    def _show_failure(self, text: str) -> None:
        QMessageBox.warning(self, "Confidant", text)

    def _store_trouble(self, trouble) -> None:
        """The library turned out damaged while in use (offer the rebuild), or the disk is
        full (say where to make room; nothing added is lost)."""
        if not trouble.damaged:
            QMessageBox.warning(self, "The disk is full", trouble.message)
            return
        self.offer_repair(trouble.damages)

    def offer_repair(self, damages=()) -> bool:
        """Show what is damaged and offer to rebuild; True when the library is sound after.
        `damages`: what an error said, for damage the file check does not see."""
        from app.core.store_health import HealthReport
        from app.gui.repair_dialog import RepairDialog

        report = self.services.health()
        if report.ok and damages:
            report = HealthReport(library=list(damages))
        if report.ok:
            return True
        RepairDialog(self.services, report, self).exec()
        self.documents.refresh()
        return self.services.health().ok

    def show_start_notes(self) -> None:
        """Once, at start: what the data directory's opening had to say (a damaged chats file
        set aside, a settings value refused)."""
        problems = list(getattr(self.services.settings, "problems", ()) or ())
        if problems:  # a bad value in settings.toml: the default is used, and said
            self.statusBar().showMessage(" ".join(problems), 30000)
        note = self.services.history.note()
        if note:
            QMessageBox.information(self, "Confidant", note)
        from app.gui.model_picker import offer_real_model

        if not self.services.settings.llm_server:  # a team's model server answers otherwise
            offer_real_model(self)  # only the built-in model: say answers will be weak, once

    def _offer_reindex(self, message: str) -> None:
        if self._confirm(
            "Re-index the library?",
            f"{message}\n\nRe-index now?",
        ):
            self._reindex(None)

    def _reindex(self, settings) -> None:
        self.documents.reindex(settings)

    # ================================================================== viewer, settings
    def open_source(self, source: dict) -> None:
        if self.viewer is None:
            from app.gui.viewer import SourceViewer  # QtPdf loads only when first needed

            self.viewer = SourceViewer(self)
        self.viewer.show_source(source)

    def open_model_picker(self) -> None:
        from app.gui.model_picker import open_picker

        open_picker(self)

    def open_about(self) -> None:
        from app.config import embedder_path, llm_path
        from app.gui.about_dialog import AboutDialog

        settings = self.services.settings
        model, embedder = llm_path(settings), embedder_path(settings)
        dialog = AboutDialog(
            self.services.home,
            str(model) if model else "none chosen",
            str(embedder) if embedder else "none found",
            self,
            where=privacy_sentence(settings),
        )
        dialog.open()
        self.about = dialog

    def open_settings(self) -> None:
        from app.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.services.settings, self)
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, new) -> bool:
        """Save `new`; re-index (after asking) or reload the model when needed. False: not saved."""
        from app.config import embedder_path, save_settings

        old = self.services.settings
        documents = self.documents.snapshot.documents
        reindex = old.needs_reindex(new) and bool(documents)
        if reindex:
            n = len(documents)
            chunks = sum(d.chunks for d in documents)
            rate = self.documents.known_rate()
            what, meanwhile = (
                ("the embedding model", "Search is unavailable until it finishes.")
                if embedder_path(old) != embedder_path(new)
                else ("the passage size", "Search keeps working meanwhile.")
            )
            if not self._confirm(
                "Re-index the library?",
                f"Changing {what} means re-reading all {n} document"
                f"{'s' if n != 1 else ''} ({duration(chunks / rate)}). {meanwhile} Re-index now?",
            ):
                return False
        try:
            save_settings(self.services.home, new)
        except OSError as exc:
            QMessageBox.warning(
                self,
                "Settings not saved",
                f"The settings could not be saved ({exc.strerror or exc}).",
            )
            return False
        if reindex:
            self._reindex(new)  # the lane switches the settings before re-reading
        else:
            self.services.apply_settings(new)
        from app.services import LIBRARY_KEYS

        if any(getattr(old, k) != getattr(new, k) for k in LIBRARY_KEYS):
            self.server_notice.clear("library")  # another library: its own snapshot says
            self.documents.refresh()
            self.ingest_lane.sources()
        if any(getattr(old, k) != getattr(new, k) for k in MODEL_KEYS):
            self.server_notice.clear("model")
            self.model_lane.drop_engine(reload=True)
        self.chat.set_where(privacy_sentence(new))
        self.statusBar().showMessage("Settings saved.", 5000)
        return True

    # ================================================================== drag and drop
    @staticmethod
    def _local_paths(mime) -> list[str]:
        if not mime.hasUrls():
            return []
        return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]

    # Always answered as a copy (drops.py): we only read the files, the originals stay put.
    def dragEnterEvent(self, event) -> None:
        if self._local_paths(event.mimeData()) and as_copy(event):
            self.overlay.setGeometry(self.rect())
            self.overlay.raise_()
            self.overlay.show()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if not (self._local_paths(event.mimeData()) and as_copy(event)):
            event.ignore()

    def dragLeaveEvent(self, event) -> None:
        self.overlay.hide()

    def dropEvent(self, event) -> None:
        self.overlay.hide()
        paths = self._local_paths(event.mimeData())
        if paths and as_copy(event):
            self.add_paths(paths)
        else:
            event.ignore()

    # ================================================================== closing
    def begin_shutdown(self) -> None:
        """Save the layout, cancel every job and let the lanes end; returns at once. Safe to
        call twice. What the lanes still run is waited for by wait_library_free() or
        shutdown()."""
        if self._closing:
            return
        self._closing = True
        self.chats.shut()
        self.documents.shut()
        self.closing.emit()
        try:
            self._save_state()
        except Exception:  # a full disk must not keep the window open
            log.exception("could not save the window state")
        if self.viewer is not None:
            self.viewer.close()
        self.ingest_lane.finish()
        self.model_lane.finish()

    def wait_library_free(self, timeout_s: float) -> bool:
        """Wait until no job uses the library any more (cancelled jobs end within moments);
        loads of the model or the embedder are not waited for. False: still used."""
        deadline = time.monotonic() + timeout_s
        lanes = (self.ingest_lane, self.model_lane)
        while any(lane.holds_library() for lane in lanes):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def shutdown(self) -> None:
        """Cancel running work and join the lanes, loads included. Safe to call twice."""
        self.begin_shutdown()
        if not self.lanes_stopped:
            stopped = [self.ingest_lane.stop(), self.model_lane.stop()]
            self.lanes_stopped = all(stopped)

    def closeEvent(self, event) -> None:
        # Only the quick part here, so the window goes at once; whoever runs the window
        # (main.py) then frees the library and ends the process.
        self.begin_shutdown()
        super().closeEvent(event)

    def bring_to_front(self) -> None:
        """Another launch asked for this window (running.py): show it, restored and active."""
        if self._closing:
            return
        self.setWindowState(
            (self.windowState() & ~Qt.WindowState.WindowMinimized) | Qt.WindowState.WindowActive
        )
        self.show()
        self.raise_()
        self.activateWindow()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.overlay.isVisible():
            self.overlay.setGeometry(self.rect())
