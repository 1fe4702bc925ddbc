"""The source viewer: a cited passage in its document, highlighted.

PDFs are shown as PDFs (QPdfView) at the cited page, the passage found with QPdfSearchModel;
other formats are re-read with the core's loaders (on a worker thread) and shown as text, scrolled
to the passage. "Open in default app" hands the file to the system.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QModelIndex, QObject, QPointF, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QKeySequence, QTextCharFormat, QTextCursor
from PySide6.QtPdf import QPdfDocument, QPdfSearchModel
from PySide6.QtPdfWidgets import QPdfView
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStackedWidget,
    QTextBrowser,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.gui.resources import icon

HIGHLIGHT = QColor(255, 214, 10, 140)  # readable on light and dark pages


def search_phrase(passage: str, words: int = 6) -> str:
    """A run of words from one line of the passage (PDF search does not cross lines)."""
    lines = [ln.split() for ln in passage.splitlines() if len(ln.split()) >= 2]
    if not lines:
        return " ".join(passage.split()[:words])
    best = max(lines, key=len)
    start = max(0, (len(best) - words) // 2)
    return " ".join(best[start : start + words])


class _TextLoader(QObject):
    loaded = Signal(int, object, str)  # request id, pages, error

    def load(self, request: int, path: str) -> None:
        def work() -> None:
            from app.core.documents import DocumentError, read_pages

            try:
                pages = [(p.number, p.text) for p in read_pages(path)]
                self.loaded.emit(request, pages, "")
            except DocumentError as exc:
                self.loaded.emit(request, [], exc.message)
            except Exception as exc:  # never let a viewer crash the app
                self.loaded.emit(request, [], f"The file could not be shown ({exc}).")

        threading.Thread(target=work, name="confidant-viewer", daemon=True).start()


class SourceViewer(QDialog):
    """One window, reused: show_source() points it at another passage."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Source")
        self.setWindowIcon(icon("document"))
        self.resize(820, 900)
        self.source: dict = {}
        self._request = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        head = QHBoxLayout()
        self.title = QLabel()
        self.title.setObjectName("viewerTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        head.addWidget(self.title, 1)
        self.open_button = QPushButton(icon("open-external"), "&Open in default app")
        self.open_button.clicked.connect(self.open_externally)
        head.addWidget(self.open_button)
        close = QPushButton("&Close")
        close.clicked.connect(self.close)
        close.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        head.addWidget(close)
        layout.addLayout(head)
        self.passage_label = QLabel()
        self.passage_label.setObjectName("mutedLabel")
        self.passage_label.setWordWrap(True)
        layout.addWidget(self.passage_label)

        self.stack = QStackedWidget()
        self.pdf = QPdfDocument(self)
        self.pdf_view = QPdfView(self)
        self.pdf_view.setDocument(self.pdf)
        self.pdf_view.setPageMode(QPdfView.PageMode.MultiPage)
        self.pdf_view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        self.search = QPdfSearchModel(self)
        self.search.setDocument(self.pdf)
        self.pdf_view.setSearchModel(self.search)
        self.search.rowsInserted.connect(self._search_results)
        self.search.modelReset.connect(self._search_results)
        self.text = QTextBrowser()
        self.text.setObjectName("sourceText")
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        for w in (self.pdf_view, self.text, self.message):
            self.stack.addWidget(w)
        layout.addWidget(self.stack, 1)
        self._loader = _TextLoader()
        self._loader.loaded.connect(self._text_loaded)
        self._wanted_page = 0
        self._highlighted = False
        self.highlighted_text = ""  # the passage marked in the text view

    # ------------------------------------------------------------------ public
    @property
    def current_page(self) -> int:
        """0-based page the PDF view shows (or -1 when showing text)."""
        if self.stack.currentWidget() is not self.pdf_view:
            return -1
        return self.pdf_view.pageNavigator().currentPage()

    def search_hits(self) -> int:
        return self.search.rowCount(QModelIndex())

    def show_source(self, source: dict) -> None:
        self.source = dict(source)
        path = Path(source.get("path", ""))
        page = source.get("page")
        self.title.setText(f"<b>{path.name}</b>" + (f" &nbsp;·&nbsp; page {page}" if page else ""))
        self.setWindowTitle(f"{path.name} – Source [{source.get('n', '')}]")
        self.passage_label.setText("Highlighted: the passage the answer cites.")
        self.open_button.setEnabled(path.is_file())
        self._request += 1
        if not path.is_file():
            self._show_message(
                f"'{path.name}' is no longer at {path.parent}. It may have been "
                "moved or deleted; add it again to cite it."
            )
        elif path.suffix.lower() == ".pdf" and self._show_pdf(path, page):
            pass
        else:
            self.stack.setCurrentWidget(self.message)
            self.message.setText("Opening…")
            self._loader.load(self._request, str(path))
        self.show()
        self.raise_()
        self.activateWindow()

    def open_externally(self) -> None:
        path = self.source.get("path")
        if path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(path))

    # ------------------------------------------------------------------ PDF
    def _show_pdf(self, path: Path, page: int | None) -> bool:
        self.search.setSearchString("")
        self.pdf.close()
        if self.pdf.load(str(path)) != QPdfDocument.Error.None_:
            return False
        self.stack.setCurrentWidget(self.pdf_view)
        self._wanted_page = max(0, min((page or 1) - 1, self.pdf.pageCount() - 1))
        nav = self.pdf_view.pageNavigator()
        nav.jump(self._wanted_page, QPointF(0, 0), nav.currentZoom())
        self._highlighted = False
        self.search.setSearchString(search_phrase(self.source.get("text", "")))
        return True

    def _search_results(self, *_args) -> None:
        if self._highlighted:
            return
        for i in range(self.search_hits()):
            link = self.search.resultAtIndex(i)
            if link.page() == self._wanted_page:
                self._highlighted = True
                self.pdf_view.setCurrentSearchResultIndex(i)
                nav = self.pdf_view.pageNavigator()
                location = QPointF(0, max(0.0, link.location().y() - 120))
                nav.jump(self._wanted_page, location, nav.currentZoom())
                return

    # ------------------------------------------------------------------ text
    def _text_loaded(self, request: int, pages: list, error: str) -> None:
        if request != self._request:
            return  # another source was asked for since
        if error:
            self._show_message(error)
            return
        parts, offsets, pos = [], {}, 0
        for number, text in pages:
            header = f"— Page {number} —\n\n" if number is not None and len(pages) > 1 else ""
            offsets[number] = pos + len(header)
            parts.append(header + text)
            pos += len(header) + len(text) + 2
        full = "\n\n".join(parts)
        self.text.setPlainText(full)
        self.stack.setCurrentWidget(self.text)
        start, end = self._locate(full, offsets)
        self.highlighted_text = ""
        if start < 0:
            return
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        selection = QTextEdit.ExtraSelection()
        selection.cursor = cursor
        fmt = QTextCharFormat()
        fmt.setBackground(HIGHLIGHT)
        selection.format = fmt
        self.text.setExtraSelections([selection])
        self.highlighted_text = full[start:end]
        # Scroll the passage to the top third, not the very bottom edge.
        bar = self.text.verticalScrollBar()
        end_cursor = QTextCursor(self.text.document())
        end_cursor.setPosition(start)
        self.text.setTextCursor(end_cursor)
        self.text.ensureCursorVisible()
        rect = self.text.cursorRect(end_cursor)
        bar.setValue(bar.value() + rect.top() - self.text.viewport().height() // 4)

    def _locate(self, full: str, offsets: dict) -> tuple[int, int]:
        src = self.source
        passage = src.get("text", "")
        base = offsets.get(src.get("page"), offsets.get(None, 0))
        start, end = base + int(src.get("start", 0)), base + int(src.get("end", 0))
        if 0 <= start < end <= len(full) and full[start : start + 40] == passage[:40]:
            return start, end
        probe = passage[:80]
        found = full.find(probe) if probe else -1
        if found >= 0:
            return found, found + len(passage)
        return -1, -1

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
