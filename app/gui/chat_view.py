"""The conversation: message bubbles, streaming answers, sources, and the question box.

Thin: it draws what the main window hands it (text, sources as dicts, stats) and says what the
user asked for through signals. Tokens arrive through append_text() and are painted at most every
30 ms (a timer flushes the buffer), never once per token.

Two verdicts of the core are drawn here: a question the library does not answer (its closest
passages folded away under a label saying they do not match, never listed as sources), and the
citation check (a sentence whose cited passage does not back it is underlined, with a note naming
the source). Both live in the stats dict ("answerable", "checks"), so a conversation reopened
from history shows them the same.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QAbstractButton,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.safe_text import snippet
from app.gui.drops import keep_copy
from app.gui.markdown_render import to_html
from app.gui.resources import icon

FLUSH_MS = 30
STOPPED_EARLY = "*Stopped before any answer.*"
NOT_ANSWERED = "Your documents do not answer this question."
CLOSEST_LABEL = "Closest passages — these do not match your question"


def unsupported_note(numbers) -> str:
    nums = [str(n) for n in numbers]
    if len(nums) == 1:
        return f"not found in source {nums[0]}"
    return f"not found in sources {', '.join(nums[:-1])} and {nums[-1]}"


def check_flags(checks: list[dict]) -> list[tuple[int, int, str]]:
    """(start, end, note) of each answer sentence a cited source does not back."""
    flags = []
    for check in checks or ():
        unsupported = check.get("unsupported") or ()
        if unsupported:
            flags.append((int(check["start"]), int(check["end"]), unsupported_note(unsupported)))
    return flags


def source_label(src: dict) -> str:
    name = Path(src.get("path", "")).name
    page = src.get("page")
    return f"{name} · page {page}" if page else name


class EnterClicks(QObject):
    """Enter and Return click a focused button, as Space does (Qt's buttons take only Space
    outside dialogs, and people press Enter)."""

    def eventFilter(self, watched, event) -> bool:
        if (
            event.type() == QEvent.Type.KeyPress
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            and isinstance(watched, QAbstractButton)
        ):
            watched.click()
            return True
        return False


_enter_clicks = None


def enter_clicks(button: QAbstractButton) -> QAbstractButton:
    global _enter_clicks
    if _enter_clicks is None:
        _enter_clicks = EnterClicks()
    button.installEventFilter(_enter_clicks)
    return button


class SourceButton(QPushButton):
    """One numbered source: file, page, a short snippet. Click (or Enter) opens the viewer."""

    def __init__(self, source: dict, parent: QWidget | None = None, closest: bool = False) -> None:
        super().__init__(parent)
        self.source = source
        self.setObjectName("sourceButton")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self._snippet = snippet(source.get("text", ""), 400)
        # A closest passage is not a citation: no [n], which would read as one.
        self._head = source_label(source) if closest else f"[{source['n']}]  {source_label(source)}"
        self.setText(f"{self._head}\n{self._snippet}")
        fm = self.fontMetrics()
        self.setMinimumHeight(fm.lineSpacing() * 2 + 18)
        name = source.get("path", "")
        self.setIcon(icon("pdf" if name.lower().endswith(".pdf") else "document"))
        self.setToolTip(f"Open {source_label(source)} at the passage")
        self.setAccessibleName(
            f"Open {source_label(source)}"
            if closest
            else f"Source {source['n']}: {source_label(source)}"
        )
        self.setAccessibleDescription(self._snippet)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        enter_clicks(self)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        room = max(60, self.width() - self.iconSize().width() - 40)
        line = self.fontMetrics().elidedText(self._snippet, Qt.TextElideMode.ElideRight, room)
        self.setText(f"{self._head}\n{line}")


class MessageBubble(QFrame):
    """A question, an answer (streaming or done), or an error."""

    source_clicked = Signal(dict)
    copy_clicked = Signal()
    regenerate_clicked = Signal()

    def __init__(self, role: str, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role  # "user" | "assistant" | "error"
        self.text = text
        self.sources: list[dict] = []  # the citations ([n] links and buttons open these)
        self.given_sources: list[dict] = []  # as handed in, citations or closest passages
        self.answerable = True
        self.regenerable = False  # offers Regenerate (set_footer_visible)
        self.checks: list[dict] = []  # the citation check's verdicts (see main_window)
        self.closest_toggle: QToolButton | None = None
        self.closest_box: QWidget | None = None
        self.setObjectName(
            {"user": "userBubble", "assistant": "answerBubble"}.get(role, "errorBubble")
        )
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 10, 14, 10)
        layout.setSpacing(8)
        top = QHBoxLayout()
        top.setSpacing(8)
        if role == "error":
            badge = QLabel()
            badge.setPixmap(icon("warning", "#d9534f").pixmap(20, 20))
            badge.setAlignment(Qt.AlignmentFlag.AlignTop)
            top.addWidget(badge)
        self.label = QLabel()
        self.label.setObjectName("bubbleText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(
            Qt.TextFormat.RichText if role == "assistant" else Qt.TextFormat.PlainText
        )
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.label.setOpenExternalLinks(False)
        self.label.linkActivated.connect(self._link)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        top.addWidget(self.label, 1)
        layout.addLayout(top)
        self.sources_box = QVBoxLayout()
        self.sources_box.setSpacing(4)
        layout.addLayout(self.sources_box)
        self.footer = QHBoxLayout()
        self.footer.setSpacing(4)
        self.stats = QLabel()
        self.stats.setObjectName("statsLabel")
        self.footer.addWidget(self.stats, 1)
        self.copy_button = self._tool("copy", "Copy answer", self.copy_clicked)
        self.regen_button = self._tool("regenerate", "Regenerate answer", self.regenerate_clicked)
        if role == "assistant":
            layout.addLayout(self.footer)
        self.set_footer_visible(False)
        self.set_text(text)

    def _tool(self, name: str, tip: str, signal) -> QToolButton:
        button = QToolButton()
        button.setIcon(icon(name))
        button.setToolTip(tip)
        button.setAccessibleName(tip)
        button.setAutoRaise(True)
        button.clicked.connect(signal)
        enter_clicks(button)
        self.footer.addWidget(button)
        return button

    def _link(self, href: str) -> None:
        if href.startswith("source:"):
            n = int(href.split(":", 1)[1])
            for src in self.sources:
                if src["n"] == n:
                    self.source_clicked.emit(src)
                    return

    def set_text(self, text: str) -> None:
        self.text = text
        if self.role == "assistant":
            if not text:
                self.label.setText("<i>Thinking…</i>")
                return
            link = self.palette().color(QPalette.ColorRole.Link).name()
            self.label.setText(to_html(text, link, check_flags(self.checks)))
        else:
            self.label.setText(text)

    def set_stage(self, text: str) -> None:
        """What an answer with no words yet is waiting for (searching, reading passages...)."""
        if self.role == "assistant" and not self.text:
            self.label.setText(f"<i>{html.escape(text)}</i>")

    def set_checks(self, checks: list[dict]) -> None:
        """The citation check's verdicts on this answer: unsupported sentences get marked."""
        self.checks = list(checks or ())
        self.set_text(self.text)

    def flagged(self) -> list[tuple[int, int, str]]:
        return check_flags(self.checks)

    def set_sources(self, sources: list[dict], answerable: bool = True) -> None:
        """Numbered sources under the answer; or, when the library does not answer the question
        (`answerable` False), the closest passages folded under a toggle, closed, labelled as
        not matching: they are not citations, and [n] in the text does not open them."""
        self.given_sources = list(sources)
        self.sources = list(sources) if answerable else []
        self.answerable = answerable
        self.closest_toggle = self.closest_box = None
        while self.sources_box.count():
            item = self.sources_box.takeAt(0)
            if widget := item.widget():
                widget.hide()
                widget.setParent(None)  # gone now, not at the next turn of the event loop
                widget.deleteLater()
        if not sources:
            return
        if answerable:
            heading = QLabel("Sources")
            heading.setObjectName("sourcesHeading")
            self.sources_box.addWidget(heading)
            for src in sources:
                self.sources_box.addWidget(self._source_button(src))
            return
        toggle = QToolButton()
        toggle.setObjectName("closestToggle")
        toggle.setText(CLOSEST_LABEL)
        toggle.setToolTip("The passages of your library nearest to the question, for reference")
        toggle.setCheckable(True)
        toggle.setChecked(False)
        toggle.setAutoRaise(True)
        toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toggle.setArrowType(Qt.ArrowType.RightArrow)
        toggle.setAccessibleName(CLOSEST_LABEL)
        enter_clicks(toggle)
        box = QWidget()
        box.setObjectName("closestPassages")
        inner = QVBoxLayout(box)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.setSpacing(4)
        for src in sources:
            inner.addWidget(self._source_button(src, closest=True))
        box.setVisible(False)

        def fold(open_: bool) -> None:
            box.setVisible(open_)
            toggle.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)

        toggle.toggled.connect(fold)
        self.sources_box.addWidget(toggle)
        self.sources_box.addWidget(box)
        self.closest_toggle, self.closest_box = toggle, box

    def _source_button(self, src: dict, closest: bool = False) -> SourceButton:
        button = SourceButton(src, closest=closest)
        button.clicked.connect(lambda _=False, s=src: self.source_clicked.emit(s))
        return button

    def focus_chain(self) -> list[QWidget]:
        """This bubble's controls in reading order: its links' label, sources, then the
        buttons under them (copy, regenerate)."""
        chain: list[QWidget] = []
        if self.role == "assistant" and self.sources:
            chain.append(self.label)  # [n] links, reached by Tab inside the text
        for i in range(self.sources_box.count()):
            w = self.sources_box.itemAt(i).widget()
            if w is None:
                continue
            if isinstance(w, QAbstractButton):
                chain.append(w)
            elif w is self.closest_box:
                chain.extend(w.findChildren(SourceButton))
        if self.role == "assistant":
            chain += [self.copy_button, self.regen_button]
        return chain

    def fit(self, max_width: int) -> None:
        """Questions hug their text (up to max_width); answers use the whole column."""
        if self.role != "user":
            return
        fm = self.label.fontMetrics()
        natural = (
            max((fm.horizontalAdvance(line) for line in self.text.splitlines() or [""]), default=0)
            + 6
        )
        self.label.setFixedWidth(max(40, min(natural, max_width - 28)))

    def set_footer_visible(self, visible: bool, can_regenerate: bool = True) -> None:
        # Kept as state: whether the bubble is on screen yet (isVisible) must not decide what
        # it offers, or a chat loaded while hidden (reopened, relaunched) loses Regenerate.
        self.regenerable = visible and can_regenerate
        self.stats.setVisible(visible)
        self.copy_button.setVisible(visible)
        self.regen_button.setVisible(self.regenerable)


class ChatInput(QPlainTextEdit):
    """Enter sends, Shift+Enter inserts a newline. File drops go to the window, not the text."""

    submitted = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatInput")
        self.setPlaceholderText("Ask about your documents…")
        self.setTabChangesFocus(True)
        self.setAccessibleName("Question")
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._fit()

    def _fit(self, *_args) -> None:
        lines = max(1, min(6, int(self.document().size().height())))
        fm = self.fontMetrics()
        self.setFixedHeight(lines * fm.lineSpacing() + 22)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(event)

    def _has_files(self, event) -> bool:
        mime = event.mimeData()
        return mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())

    # Text dragged in from another program is copied (drops.py); moving text within the box
    # stays a move.
    def dragEnterEvent(self, event) -> None:
        if self._has_files(event):
            event.ignore()  # let the window take it
            return
        super().dragEnterEvent(event)
        keep_copy(event, (self, self.viewport()))

    def dragMoveEvent(self, event) -> None:
        if self._has_files(event):
            event.ignore()
            return
        super().dragMoveEvent(event)
        keep_copy(event, (self, self.viewport()))

    def dropEvent(self, event) -> None:
        if self._has_files(event):
            event.ignore()
            return
        super().dropEvent(event)
        keep_copy(event, (self, self.viewport()))


class EmptyState(QWidget):
    """What an empty conversation shows: an invitation to drop files, or to ask."""

    add_files = Signal()
    add_folder = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.picture)
        self.title = QLabel()
        self.title.setObjectName("emptyTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.title)
        self.body = QLabel()
        self.body.setObjectName("emptyBody")
        self.body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.body.setWordWrap(True)
        self.body.setMaximumWidth(560)
        # Centred by stretches, not by an alignment flag: a layout item with an alignment
        # ignores a wrapped label's height-for-width, and its lines were clipped.
        body_row = QHBoxLayout()
        body_row.addStretch(1)
        body_row.addWidget(self.body, 100)
        body_row.addStretch(1)
        layout.addLayout(body_row)
        buttons = QHBoxLayout()
        buttons.addStretch()
        self.files_button = QPushButton(icon("add"), "Add &files…")
        self.files_button.clicked.connect(self.add_files)
        self.folder_button = QPushButton(icon("folder"), "Add f&older…")
        self.folder_button.clicked.connect(self.add_folder)
        for b in (self.files_button, self.folder_button):
            b.setObjectName("primaryButton" if b is self.files_button else "secondaryButton")
            b.setMinimumHeight(34)
            buttons.addWidget(b)
        buttons.addStretch()
        layout.addSpacing(8)
        layout.addLayout(buttons)
        layout.addStretch(3)
        self._documents = 0
        self._where = LOCAL
        self.set_library(0)

    def set_where(self, sentence: str) -> None:
        """Where documents and questions go (privacy_sentence), said under the title."""
        self._where = sentence
        self.set_library(self._documents)

    def set_library(self, documents: int) -> None:
        self._documents = documents
        has_docs = documents > 0
        self.picture.setPixmap(
            icon("app" if has_docs else "drop", _muted(self)).pixmap(64, 64)
            if not has_docs
            else icon("app", None).pixmap(64, 64)
        )
        if has_docs:
            self.title.setText("Ask about your documents")
            self.body.setText(
                f"{documents} document{'s' if documents != 1 else ''} in your library. "
                "Type a question below: answers cite the pages they come from. " + self._where
            )
        else:
            self.title.setText("Drop files or folders here")
            self.body.setText(
                "Add PDFs, Word documents, web pages or text files, then ask questions "
                "about them. " + self._where
            )
        self.files_button.setVisible(not has_docs)
        self.folder_button.setVisible(not has_docs)


LOCAL = "Everything stays on this computer."


def privacy_sentence(settings) -> str:
    """Where documents and questions go under these settings, in one sentence: team mode
    (docs/team-setup.md) sends them to the firm's own servers, and the window must not say
    otherwise."""
    library, model = bool(settings.library_server), bool(settings.llm_server)
    if library and model:
        return "Your documents and questions go to your team's servers, and nowhere else."
    if library:
        return (
            "Your documents go to your team's library server; answers are written on this computer."
        )
    if model:
        return (
            "Your documents stay on this computer; questions and the passages they need go to "
            "your team's model server."
        )
    return LOCAL


def _muted(widget: QWidget):
    color = widget.palette().color(QPalette.ColorRole.WindowText)
    color.setAlphaF(0.45)
    return color


class ChatView(QWidget):
    """Messages above, the question box below."""

    send_requested = Signal(str)
    stop_requested = Signal()
    notice_clicked = Signal()
    regenerate_requested = Signal()
    source_clicked = Signal(dict)
    add_files = Signal()
    add_folder = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bubbles: list[MessageBubble] = []
        self.current: MessageBubble | None = None  # the answer being streamed
        self.busy = False
        self._pending = ""
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush)
        self.flushes = 0  # paints of streamed text (tests check tokens are coalesced)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.stack = QStackedWidget()
        self.empty = EmptyState()
        self.empty.setObjectName("emptyState")
        self.empty.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.empty.add_files.connect(self.add_files)
        self.empty.add_folder.connect(self.add_folder)
        self.scroll = QScrollArea()
        self.scroll.setObjectName("chatScroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setAccessibleName("Conversation")
        # Reached by clicking (then the arrow keys scroll); Tab walks its messages' buttons.
        self.scroll.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.column = QWidget()
        self.column.setObjectName("chatColumn")
        self.messages = QVBoxLayout(self.column)
        self.messages.setContentsMargins(24, 20, 24, 20)
        self.messages.setSpacing(14)
        self.messages.addStretch(1)
        self.scroll.setWidget(self.column)
        self.scroll.verticalScrollBar().rangeChanged.connect(self._follow)
        self._at_bottom = True
        self.scroll.verticalScrollBar().valueChanged.connect(self._track_bottom)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(self.scroll)
        # A note across the top of the conversation (the built-in model is weak...), with one
        # action and a dismiss button; hidden until something is to be said.
        self.notice = QFrame()
        self.notice.setObjectName("chatNotice")
        self.notice.setStyleSheet(
            "#chatNotice { background: palette(alternate-base); "
            "border-bottom: 1px solid palette(midlight); }"
        )
        row = QHBoxLayout(self.notice)
        row.setContentsMargins(24, 8, 12, 8)
        self.notice_label = QLabel()
        self.notice_label.setWordWrap(True)
        row.addWidget(self.notice_label, 1)
        self.notice_button = QPushButton()
        self.notice_button.clicked.connect(self._notice_clicked)
        row.addWidget(self.notice_button)
        dismiss = QToolButton()
        dismiss.setText("✕")
        dismiss.setAutoRaise(True)
        dismiss.setAccessibleName("Dismiss this note")
        dismiss.setToolTip("Dismiss")
        dismiss.clicked.connect(self.notice.hide)
        row.addWidget(dismiss)
        self.notice.hide()
        outer.addWidget(self.notice)
        outer.addWidget(self.stack, 1)

        bar = QFrame()
        bar.setObjectName("inputBar")
        row = self.input_row = QHBoxLayout(bar)
        row.setContentsMargins(24, 10, 24, 14)
        row.setSpacing(8)
        self.input = ChatInput()
        self.input.submitted.connect(self._send_or_stop_from_enter)
        row.addWidget(self.input, 1)
        self.send_button = QPushButton()
        self.send_button.setObjectName("sendButton")
        self.send_button.setMinimumSize(44, 38)
        self.send_button.clicked.connect(self._send_or_stop)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        outer.addWidget(bar)
        self.setFocusProxy(self.input)
        self._library_docs = 0
        self.set_busy(False)
        self._update_stack()

    # ------------------------------------------------------------------ state
    def show_notice(self, text: str, button: str) -> None:
        """A note across the top; its button emits notice_clicked. (A signal, not a stored
        callback: a closure over the window kept here made a Python cycle through the window,
        freed later by the garbage collector on whatever thread ran it: a segfault.)"""
        self.notice_label.setText(text)
        self.notice_button.setText(button)
        self.notice.show()

    def _notice_clicked(self) -> None:
        self.notice.hide()
        self.notice_clicked.emit()

    def set_where(self, sentence: str) -> None:
        self.empty.set_where(sentence)

    def set_library(self, documents: int) -> None:
        if documents == self._library_docs:
            return  # (each snapshot of a sync calls this; the picture is an SVG drawn anew)
        self._library_docs = documents
        self.empty.set_library(documents)
        self._update_stack()

    def _update_stack(self) -> None:
        self.stack.setCurrentWidget(self.scroll if self.bubbles else self.empty)

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        if busy:
            self.send_button.setIcon(icon("stop"))
            self.send_button.setToolTip("Stop the answer (Esc)")
            self.send_button.setAccessibleName("Stop")
        else:
            self.send_button.setIcon(icon("send", "white"))
            self.send_button.setToolTip("Send (Enter). Shift+Enter starts a new line.")
            self.send_button.setAccessibleName("Send")
        self.send_button.setProperty("stop", busy)
        self.send_button.style().unpolish(self.send_button)
        self.send_button.style().polish(self.send_button)
        for bubble in self.bubbles:
            if bubble.role == "assistant":
                bubble.regen_button.setEnabled(not busy)

    def _send_or_stop_from_enter(self) -> None:
        if not self.busy:
            self._send_or_stop()

    def _send_or_stop(self) -> None:
        if self.busy:
            self.stop_requested.emit()
            return
        text = self.input.toPlainText().strip()
        if text:
            self.input.clear()
            self.send_requested.emit(text)

    # ------------------------------------------------------------------ messages
    def clear(self) -> None:
        self._flush_timer.stop()
        self._pending = ""
        for bubble in self.bubbles:
            self.messages.removeWidget(bubble)
            # Gone from the screen now: a nested event loop (a context menu open over the
            # chats list) would otherwise paint them under the next chat's until it ends.
            bubble.hide()
            bubble.setParent(None)
            bubble.deleteLater()
        self.bubbles.clear()
        self.current = None
        self._update_stack()

    def _add(self, bubble: MessageBubble) -> MessageBubble:
        row_index = self.messages.count() - 1  # before the stretch
        self.messages.insertWidget(row_index, bubble)
        if bubble.role == "user":
            self.messages.setAlignment(bubble, Qt.AlignmentFlag.AlignRight)
        bubble.fit(self._user_width())
        bubble.source_clicked.connect(self.source_clicked)
        bubble.copy_clicked.connect(lambda b=bubble: QGuiApplication.clipboard().setText(b.text))
        bubble.regenerate_clicked.connect(self.regenerate_requested)
        self.bubbles.append(bubble)
        self._update_stack()
        self._at_bottom = True
        self._refresh_regenerate()
        return bubble

    def add_user(self, text: str) -> MessageBubble:
        return self._add(MessageBubble("user", text))

    def add_answer(self, text: str, sources: list[dict], stats: dict) -> MessageBubble:
        """A finished answer (from history): its stats carry the gate's and the check's
        verdicts."""
        bubble = self._add(MessageBubble("assistant"))
        answerable = (stats or {}).get("answerable", True) is not False
        bubble.checks = list((stats or {}).get("checks") or ())
        bubble.set_text(text or (STOPPED_EARLY if answerable else NOT_ANSWERED))
        bubble.set_sources(sources, answerable)
        bubble.stats.setText(stats_line(stats))
        bubble.set_footer_visible(True)
        self._refresh_regenerate()
        return bubble

    def add_error(self, message: str) -> MessageBubble:
        return self._add(MessageBubble("error", message))

    def begin_answer(self) -> MessageBubble:
        self.current = self._add(MessageBubble("assistant"))
        self._pending = ""
        return self.current

    def append_text(self, text: str) -> None:
        self._pending += text
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def flush(self) -> None:
        if self.current is not None and self._pending:
            self.current.set_text(self.current.text + self._pending)
            self.flushes += 1
        self._pending = ""
        self._flush_timer.stop()

    def set_sources(self, sources: list[dict], answerable: bool = True) -> None:
        if self.current is not None:
            self.current.set_sources(sources, answerable)

    def finish_answer(self, text: str, stats: dict, sources: list[dict] | None = None) -> None:
        """The answer is done. `stats` may carry "answerable" and "checks" (see add_answer);
        `sources`, when given, replace the bubble's (they now carry each source's "support")."""
        self.flush()
        bubble = self.current
        self.current = None
        if bubble is None:
            return
        answerable = (stats or {}).get("answerable", bubble.answerable) is not False
        if sources is not None or answerable != bubble.answerable:
            bubble.set_sources(sources if sources is not None else bubble.given_sources, answerable)
        bubble.checks = list((stats or {}).get("checks") or ())
        if text or bubble.text:
            bubble.set_text(text or bubble.text)
        else:
            bubble.set_text(STOPPED_EARLY if answerable else NOT_ANSWERED)
        bubble.stats.setText(stats_line(stats))
        bubble.set_footer_visible(True)
        self._refresh_regenerate()

    def fail_answer(self, message: str) -> None:
        """The answer failed: its bubble becomes an error bubble (sources kept if any)."""
        self.flush()
        bubble = self.current
        self.current = None
        if bubble is not None and not bubble.text and not bubble.sources:
            self.messages.removeWidget(bubble)
            self.bubbles.remove(bubble)
            bubble.deleteLater()
        elif bubble is not None:
            bubble.set_footer_visible(True, can_regenerate=False)
        self.add_error(message)

    def drop_last_answer(self) -> None:
        """Remove the last answer (or error) bubble, for Regenerate."""
        while self.bubbles and self.bubbles[-1].role in ("assistant", "error"):
            bubble = self.bubbles.pop()
            self.messages.removeWidget(bubble)
            bubble.deleteLater()
        self._update_stack()

    def _refresh_regenerate(self) -> None:
        """Regenerate is offered on one bubble: a finished answer that ends the conversation
        and answers the question before it, whether it was just written or reopened from
        history."""
        last = self.bubbles[-1] if self.bubbles else None
        offer = (
            last is not None
            and last.role == "assistant"
            and last.regenerable
            and len(self.bubbles) >= 2
            and self.bubbles[-2].role == "user"
        )
        for bubble in self.bubbles:
            if bubble.role == "assistant":
                bubble.regen_button.setVisible(offer and bubble is last)

    def focus_chain(self) -> list[QWidget]:
        """Every message's controls, top to bottom (the window puts them before the question
        box in the Tab order: Shift+Tab from the box walks back up the conversation)."""
        return [w for bubble in self.bubbles for w in bubble.focus_chain()]

    # ------------------------------------------------------------------ geometry
    MAX_COLUMN = 860

    def _user_width(self) -> int:
        return int(min(self.width(), self.MAX_COLUMN) * 0.72)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        side = max(24, (self.width() - self.MAX_COLUMN) // 2)
        self.messages.setContentsMargins(side, 20, side, 20)
        self.input_row.setContentsMargins(side, 10, side, 14)  # the box as wide as the messages
        for bubble in self.bubbles:
            bubble.fit(self._user_width())

    # ------------------------------------------------------------------ scrolling
    def _track_bottom(self, value: int) -> None:
        bar = self.scroll.verticalScrollBar()
        self._at_bottom = value >= bar.maximum() - 40

    def _follow(self, _min: int, maximum: int) -> None:
        if self._at_bottom:
            self.scroll.verticalScrollBar().setValue(maximum)

    def event(self, e: QEvent) -> bool:
        if e.type() == QEvent.Type.PaletteChange:
            self.set_busy(self.busy)
        return super().event(e)


def stats_line(stats: dict) -> str:
    if not stats:
        return ""
    if stats.get("stop_reason") == "no_sources":
        return "No matching passages found"
    if stats.get("answerable") is False or stats.get("stop_reason") == "not_answerable":
        return "Not answered from your documents"
    parts = []
    if stats.get("model"):
        parts.append(str(stats["model"]))
    rate = stats.get("tokens_per_s") or 0
    if rate > 0:  # "1 tokens/s" read badly; a slow machine gets its decimal
        parts.append(f"{rate:.0f} tokens a second" if rate >= 10 else f"{rate:.1f} tokens a second")
    if stats.get("stop_reason") == "cancelled":
        parts.append("stopped")
    elif stats.get("stop_reason") == "length":
        parts.append("cut at the length limit")
    flagged = sum(1 for c in stats.get("checks") or () if c.get("unsupported"))
    if flagged:
        parts.append(
            "1 sentence not found in its source"
            if flagged == 1
            else f"{flagged} sentences not found in their sources"
        )
    return " · ".join(parts)
