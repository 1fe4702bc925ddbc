"""The main window: wires the views to the lanes and to the chat history.

Everything slow happens on a lane (lanes.py); this class only turns lane events into view calls
and user gestures into lane jobs. It is built and shown before any model loads.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
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

from app.core.chat import Turn
from app.core.events import (
    AnswerDone,
    AnswerFailed,
    FileDone,
    FileProgress,
    FileStarted,
    IngestFinished,
    IngestStarted,
    SourcesFound,
    TextPiece,
)
from app.gui.chat_view import ChatView
from app.gui.conversations_view import ConversationsView
from app.gui.drops import as_copy
from app.gui.lanes import (
    IngestBlocked,
    IngestLane,
    Job,
    LibrarySnapshot,
    ModelDropped,
    ModelFailed,
    ModelLane,
    ModelLoading,
    ModelReady,
    Resuming,
)
from app.gui.library_view import LibraryView
from app.gui.resources import icon

log = logging.getLogger(__name__)

DONE_STATUS = {"added": "ready", "replaced": "ready", "unchanged": "ready"}
MODEL_KEYS = ("llm_path", "gpu_layers", "context_size")


def source_dict(src) -> dict:
    h = src.hit
    return {
        "n": src.n,
        "path": h.path,
        "page": h.page,
        "text": h.text,
        "start": h.start,
        "end": h.end,
        "score": h.score,
    }


def check_dict(check) -> dict:
    """A CitationCheck as JSON-friendly data (history stores it in the answer's stats)."""
    return {
        "start": check.start,
        "end": check.end,
        "cited": list(check.cited),
        "unsupported": list(check.unsupported),
        "support": {str(n): list(sentences) for n, sentences in check.support.items()},
    }


def with_support(sources: list[dict], checks: list[dict]) -> list[dict]:
    """The sources, each given the sentences of its passage that the check found backing the
    answer ("support"), for the viewer to highlight more strongly."""
    out = []
    for src in sources:
        support: list[str] = []
        for check in checks:
            for sentence in check.get("support", {}).get(str(src.get("n")), ()):
                if sentence not in support:
                    support.append(sentence)
        out.append({**src, "support": support} if support else dict(src))
    return out


def stats_dict(stats) -> dict:
    return {
        "model": stats.model,
        "ttft_ms": stats.ttft_ms,
        "tokens_per_s": stats.tokens_per_s,
        "completion_tokens": stats.completion_tokens,
        "gpu_layers": stats.gpu_layers,
        "stop_reason": stats.stop_reason,
    }


# The re-index prompt estimates its time from the last ingestion on this machine that embedded
# at least RATE_MIN_CHUNKS passages (a GPU is ~20x a 2-core CPU), else from a 2-core CPU's rate.
RATE_KEY = "ingest/chunks_per_s"
RATE_MIN_CHUNKS = 256
GUESSED_RATE = 40.0


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value and value > 0 else None


def duration(seconds: float, short: bool = False) -> str:
    if seconds < 60:
        return "under a minute" if short else "less than a minute"
    minutes = round(seconds / 60)
    if short:
        return f"about {minutes} min"
    return f"about {minutes} minute{'s' if minutes != 1 else ''}"


class DropOverlay(QLabel):
    """Shown over the window while files are dragged onto it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__("Drop to add to your library", parent)
        self.setObjectName("dropOverlay")
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()


class MainWindow(QMainWindow):
    closing = Signal()  # the window has started to close (it no longer takes requests)

    def __init__(self, services) -> None:
        super().__init__()
        self.services = services
        self.setWindowTitle("Confidant")
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self.conversation: int | None = None
        self.ask_job: Job | None = None
        self.model_status = "Model loads with the first question"
        self._closing = False
        self.lanes_stopped = False
        self._new_ingest_progress()
        self.documents_ready = 0
        self.viewer = None

        self.model_lane = ModelLane(services, self)
        self.ingest_lane = IngestLane(services, self)
        self.model_lane.event.connect(self._model_event)
        self.model_lane.failed.connect(self._model_failed)
        self.model_lane.finished.connect(self._model_finished)
        self.ingest_lane.event.connect(self._ingest_event)
        self.ingest_lane.failed.connect(self._ingest_failed)
        self.ingest_lane.finished.connect(self._ingest_finished)

        self._build()
        self._build_actions()
        self._restore()

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
        self.library.cancel_requested.connect(self.cancel_ingest)

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

        self.chat = ChatView()
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
        self.setCentralWidget(self.split)
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
        self.setTabOrder(self.chat.input, self.chat.send_button)
        self.setTabOrder(self.chat.send_button, self.conversations.new_button)
        self.setTabOrder(self.conversations.new_button, self.conversations.list)
        self.setTabOrder(self.conversations.list, self.library.list)
        self.setTabOrder(self.library.list, self.library.files_button)
        self.setTabOrder(self.library.files_button, self.library.folder_button)

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
        self.addAction(self.conversations.rename_action)
        self._update_actions()

    def _update_actions(self) -> None:
        busy = self.ask_job is not None
        self.stop_action.setEnabled(busy)
        self.regen_action.setEnabled(not busy and any(b.role != "user" for b in self.chat.bubbles))

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
        self._apply_snapshot(self.ingest_lane.snapshot())  # a quick SQLite read

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
        self._new_ingest_progress()
        # What the resume job will pick up once the embedder has loaded (the requests still on
        # disk, the documents left half-done) says so meanwhile, instead of "Cancelled".
        self.library.mark_resuming(
            self.services.ingest_queue.paths() + self.library.unfinished_paths()
        )
        self.ingest_lane.resume()

    # ================================================================== conversations
    def _refresh_conversations(self) -> None:
        self.conversations.set_conversations(
            self.services.history.conversations(), self.conversation
        )

    def open_conversation(self, conv_id: int | None) -> None:
        if conv_id is not None and conv_id == self.conversation and self.chat.bubbles:
            return
        if self.ask_job is not None:
            self.stop()
        self.conversation = conv_id
        self.chat.clear()
        if conv_id is not None:
            for m in self.services.history.messages(conv_id):
                if m.role == "user":
                    self.chat.add_user(m.text)
                elif m.stats.get("error"):
                    self.chat.add_error(m.text)
                else:
                    self.chat.add_answer(m.text, m.sources, m.stats)
        self._refresh_conversations()
        self._update_actions()
        self.chat.input.setFocus()

    def new_conversation(self) -> None:
        """A blank chat; it is stored (and listed) once the first question is asked."""
        self.open_conversation(None)
        self.conversations.list.clearSelection()
        self.conversations.list.setCurrentItem(None)

    def rename_conversation(self, conv_id: int) -> None:
        current = next(
            (c.title for c in self.services.history.conversations() if c.id == conv_id), ""
        )
        title, ok = QInputDialog.getText(self, "Rename conversation", "Name:", text=current)
        if ok and title.strip():
            self.services.history.rename(conv_id, title)
            self._refresh_conversations()

    def delete_conversation(self, conv_id: int) -> None:
        title = next(
            (c.title for c in self.services.history.conversations() if c.id == conv_id), ""
        )
        answer = QMessageBox.question(
            self,
            "Delete conversation",
            f"Delete the conversation “{title}” and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        if conv_id == self.conversation and self.ask_job is not None:
            self.stop()
        self.services.history.delete(conv_id)
        if conv_id == self.conversation:
            self.conversation = None
            self.chat.clear()
        self._refresh_conversations()

    def _turns(self, conv_id: int) -> list[Turn]:
        turns, question = [], None
        for m in self.services.history.messages(conv_id):
            if m.role == "user":
                question = m.text
            elif question is not None and not m.stats.get("error"):
                turns.append(Turn(question, m.text))
                question = None
        return turns

    # ================================================================== asking
    def ask(self, question: str) -> None:
        question = question.strip()
        if not question or self.ask_job is not None:
            return
        history = self.services.history
        if self.conversation is None:
            title = " ".join(question.split())
            title = title if len(title) <= 48 else title[:47].rsplit(" ", 1)[0] + "…"
            self.conversation = history.create(title).id
            self._refresh_conversations()
        turns = self._turns(self.conversation)
        history.add(self.conversation, "user", question)
        self.chat.add_user(question)
        self._start_answer(question, turns)

    def _start_answer(self, question: str, turns: list[Turn]) -> None:
        self.chat.begin_answer()
        self.chat.set_busy(True)
        self.ask_job = self.model_lane.ask(question, turns, conversation=self.conversation)
        self._update_actions()

    def stop(self) -> None:
        if self.ask_job is not None:
            self.ask_job.cancel.cancel()

    def regenerate(self) -> None:
        if self.ask_job is not None or self.conversation is None:
            return
        history = self.services.history
        messages = history.messages(self.conversation)
        while messages and messages[-1].role == "assistant":
            history.delete_message(messages.pop().id)
        if not messages:
            return
        question = messages[-1].text
        self.chat.drop_last_answer()
        self._start_answer(question, self._turns_before_last(messages))

    def _turns_before_last(self, messages) -> list[Turn]:
        turns, question = [], None
        for m in messages[:-1]:
            if m.role == "user":
                question = m.text
            elif question is not None and not m.stats.get("error"):
                turns.append(Turn(question, m.text))
                question = None
        return turns

    def _visible(self, job: Job) -> bool:
        return job is self.ask_job and job.data.get("conversation") == self.conversation

    def _model_event(self, job: Job, event) -> None:
        if self._closing:
            return
        if isinstance(event, ModelLoading):
            self._set_model_status("Loading model…")
        elif isinstance(event, ModelReady):
            self._set_model_status(f"{event.model} · {event.where}", event.warning)
        elif isinstance(event, ModelFailed):
            self._set_model_status("No model loaded", event.message)
        elif isinstance(event, ModelDropped):
            self._set_model_status("Model loads with the first question")
        elif job.kind == "ask":
            self._answer_event(job, event)

    def _answer_event(self, job: Job, event) -> None:
        conv = job.data.get("conversation")
        if isinstance(event, SourcesFound):
            job.data["sources"] = [source_dict(s) for s in event.sources]
            job.data["answerable"] = event.answerable
            if self._visible(job):
                self.chat.set_sources(job.data["sources"], event.answerable)
        elif isinstance(event, TextPiece):
            if self._visible(job):
                self.chat.append_text(event.text)
        elif isinstance(event, AnswerDone):
            checks = [check_dict(c) for c in event.checks]
            sources = [source_dict(s) for s in event.sources] or job.data.get("sources", [])
            sources = with_support(sources, checks)
            stats = stats_dict(event.stats)
            # The gate's and the check's verdicts ride in the stats, so a reopened chat shows
            # them again (the history's schema is unchanged).
            stats["answerable"] = bool(job.data.get("answerable", True))
            if event.stats.stop_reason == "not_answerable":
                stats["answerable"] = False
            stats["checks"] = checks
            job.data["answered"] = True
            if conv is not None:
                self.services.history.add(conv, "assistant", event.answer, sources, stats)
            if self._visible(job):
                self.chat.finish_answer(event.answer, stats, sources)
        elif isinstance(event, AnswerFailed):
            self._answer_failed(job, event.message)

    def _answer_failed(self, job: Job, message: str) -> None:
        job.data["answered"] = True
        conv = job.data.get("conversation")
        if conv is not None:
            self.services.history.add(conv, "assistant", message, [], {"error": True})
        if self._visible(job):
            self.chat.fail_answer(message)

    def _model_failed(self, job: Job, message: str) -> None:
        if self._closing:
            return
        if job.kind == "ask":
            self._answer_failed(job, f"The answer stopped with an error: {message}")
        else:
            self._set_model_status("No model loaded", message)

    def _model_finished(self, job: Job) -> None:
        if self._closing or job is not self.ask_job:
            return
        if not job.data.get("answered") and self._visible(job):
            self.chat.finish_answer("", {"stop_reason": "cancelled"})
        self.ask_job = None
        self.chat.set_busy(False)
        self._update_actions()

    def _set_model_status(self, text: str, tooltip: str | None = None) -> None:
        self.model_status = text
        self.model_label.setText(text)
        self.model_label.setToolTip(tooltip or "")

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

    def add_paths(self, paths: list[str]) -> Job:
        paths = [str(p) for p in paths]
        if not self.ingest_lane.busy("ingest"):
            self._new_ingest_progress()
        self.services.ingest_queue.add(paths)  # kept until read: a closed window resumes it
        self.library.mark_queued(paths)
        self._show_ingest_progress()
        return self.ingest_lane.ingest(paths)

    def cancel_ingest(self) -> None:
        self.ingest_lane.cancel_all("ingest")
        self.services.ingest_queue.clear()  # stopped on purpose: not resumed at the next start
        self.library.progress_label.setText("Cancelling…")

    def remove_documents(self, paths: list[str]) -> None:
        if not paths:
            return
        what = f"“{Path(paths[0]).name}”" if len(paths) == 1 else f"these {len(paths)} documents"
        answer = QMessageBox.question(
            self,
            "Remove from library",
            f"Remove {what} from the library? The files themselves stay where they are.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            for p in paths:
                self.library.set_live(p, "removing")
            self.ingest_lane.remove(paths)

    def _new_ingest_progress(self) -> None:
        """Start counting a new stretch of ingestion (files done of total, for the bar)."""
        self._ingest = {"done": 0, "total": 0, "started": time.monotonic(), "counts": {}}

    def _show_ingest_progress(self) -> None:
        s = self._ingest
        done, total = s["done"], s["total"]
        if total == 0:
            self.library.set_progress(0, 0, "Looking for documents…")
            return
        verb = "Resuming" if s.get("resuming") else "Adding"
        text = f"{verb} {done} of {total} documents"
        elapsed = time.monotonic() - s["started"]
        if 0 < done < total and elapsed > 2:
            text += f" · {duration(elapsed / done * (total - done), short=True)} left"
        self.library.set_progress(done, total, text)

    def _ingest_event(self, job: Job, event) -> None:
        if self._closing:
            return
        s = self._ingest
        if isinstance(event, LibrarySnapshot):
            self._apply_snapshot(event)
        elif isinstance(event, IngestStarted):
            s["total"] += event.total
            self._show_ingest_progress()
        elif isinstance(event, FileStarted):
            self.library.set_live(event.path, "reading")
        elif isinstance(event, FileProgress):
            self.library.set_live(event.path, event.stage, event.chunks)
        elif isinstance(event, FileDone):
            s["done"] += 1
            s["counts"][event.status] = s["counts"].get(event.status, 0) + 1
            self.library.file_done(
                event.path,
                DONE_STATUS.get(event.status, event.status),
                event.pages,
                event.chunks,
                event.error,
            )
            self._show_ingest_progress()
        elif isinstance(event, IngestFinished):
            if event.chunks >= RATE_MIN_CHUNKS and event.seconds > 0:
                rate = event.chunks / event.seconds
                self.services.history.set_state(RATE_KEY, f"{rate:.3g}")
        elif isinstance(event, Resuming):
            s["resuming"] = True
            self.library.mark_resuming(list(event.paths))
            self._show_ingest_progress()
            n = len(event.paths)
            self.statusBar().showMessage(
                f"Picking up {n} item{'s' if n != 1 else ''} left unfinished last time.", 10000
            )
        elif isinstance(event, IngestBlocked):
            self._offer_reindex(event.message)

    def _ingest_failed(self, job: Job, message: str) -> None:
        if self._closing:
            return
        what = "Removing documents" if job.kind == "remove" else "Adding documents"
        self.statusBar().showMessage(f"{what} failed: {message}", 15000)
        QMessageBox.warning(self, "Confidant", f"{what} failed: {message}")

    def _ingest_finished(self, job: Job) -> None:
        if self._closing:
            return
        if job.kind in ("ingest", "remove") and not self.ingest_lane.busy("ingest"):
            self.library.hide_progress()
            self.library.clear_live()
            self.ingest_lane.refresh()
            counts = self._ingest["counts"]
            if job.kind == "ingest" and counts:
                self.statusBar().showMessage(self._summary(counts), 10000)
            # Files that could not be added are summed up in a note that stays until it is
            # dismissed (the status bar's message goes after a few seconds).
            self.library.show_failures()

    @staticmethod
    def _summary(counts: dict) -> str:
        added = counts.get("added", 0) + counts.get("replaced", 0)
        parts = [f"Added {added} document{'s' if added != 1 else ''}"]
        for key, word in (
            ("unchanged", "already there"),
            ("skipped", "skipped"),
            ("failed", "could not be read"),
            ("cancelled", "cancelled"),
        ):
            if counts.get(key):
                parts.append(f"{counts[key]} {word}")
        return ", ".join(parts) + "."

    def _apply_snapshot(self, snapshot: LibrarySnapshot) -> None:
        self.library.set_snapshot(snapshot)
        ready = [d for d in snapshot.documents if d.status == "ready"]
        self.documents_ready = len(ready)
        self.chat.set_library(len(ready))
        n = len(ready)
        self.library_label.setText(
            f"{n} document{'s' if n != 1 else ''} · {snapshot.chunks} passage"
            f"{'s' if snapshot.chunks != 1 else ''}"
        )

    def _offer_reindex(self, message: str) -> None:
        answer = QMessageBox.question(
            self,
            "Re-index the library?",
            f"{message}\n\nRe-index now?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self._reindex(None)

    def _reindex(self, settings) -> None:
        self._new_ingest_progress()
        self._show_ingest_progress()
        self.ingest_lane.reindex(settings)

    # ================================================================== viewer, settings
    def open_source(self, source: dict) -> None:
        if self.viewer is None:
            from app.gui.viewer import SourceViewer  # QtPdf loads only when first needed

            self.viewer = SourceViewer(self)
        self.viewer.show_source(source)

    def open_settings(self) -> None:
        from app.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.services.settings, self)
        if dialog.exec() == SettingsDialog.DialogCode.Accepted:
            self.apply_settings(dialog.result_settings())

    def apply_settings(self, new) -> bool:
        """Save `new`; re-index (after asking) or reload the model when needed. False: not saved."""
        from app.config import embedder_path, save_settings

        old = self.services.settings
        documents = self.ingest_lane.snapshot().documents
        reindex = old.needs_reindex(new) and bool(documents)
        if reindex:
            n = len(documents)
            chunks = sum(d.chunks for d in documents)
            rate = _float(self.services.history.get_state(RATE_KEY)) or GUESSED_RATE
            what, meanwhile = (
                ("the embedding model", "Search is unavailable until it finishes.")
                if embedder_path(old) != embedder_path(new)
                else ("the passage size", "Search keeps working meanwhile.")
            )
            answer = QMessageBox.question(
                self,
                "Re-index the library?",
                f"Changing {what} means re-reading all {n} document"
                f"{'s' if n != 1 else ''} ({duration(chunks / rate)}). {meanwhile} Re-index now?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
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
        if any(getattr(old, k) != getattr(new, k) for k in MODEL_KEYS):
            self.model_lane.drop_engine(reload=True)
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
