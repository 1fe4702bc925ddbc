"""The source viewer: a cited passage in its document, highlighted.

PDFs are shown as PDFs (QPdfView) at the cited page. The passage is found in the page's own text
(QPdfDocument.getAllText, the PDFium text the library indexed) by a matcher that ignores
spacing, line breaks, hyphens and case, and every line of it is painted over the page from
QPdfDocument.getSelectionAtIndex's bounds: the whole passage lightly, the sentences that support
the answer (the source's "support") strongly. Other formats are re-read with the core's loaders
(on a worker thread) and shown as text, scrolled to the passage, marked the same way. A passage
that cannot be found is said to be missing, never claimed. "Open in default app" hands the file
to the system.

Why the page is brought into view only once the view has its size: QPdfView scrolls to a page by
the pixel position its layout gives that page, and in FitToWidth the layout scales with the
viewport's width. Jumping while the dialog was still unshown (a viewport a few pixels wide, every
page a few pixels tall) set a scroll offset that, once the dialog was shown and the pages grew to
their real size, pointed at a page about a tenth as far in: "page 2249" showed page 258 at first
open, and right later, once the view had its size. The target (page, place on the page) is now
kept and applied after each resize of the view, until the reader scrolls.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QGuiApplication,
    QKeySequence,
    QPainter,
    QPolygonF,
    QTextCharFormat,
    QTextCursor,
    QTransform,
)
from PySide6.QtPdf import QPdfDocument
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

from app.core.safe_text import snippet
from app.gui.resources import icon

# Text view (light or dark theme): translucent.
PASSAGE_TEXT = QColor(255, 214, 10, 80)
SUPPORT_TEXT = QColor(255, 170, 0, 190)
# PDF pages are white and painted over with Multiply, so the print stays black.
PASSAGE_PDF = QColor(255, 243, 168)
SUPPORT_PDF = QColor(255, 196, 64)
MARGIN_BAR = QColor(230, 150, 0)

HIGHLIGHTED = "Highlighted: the passage the answer cites."
HIGHLIGHTED_SUPPORT = (
    "Highlighted: the passage the answer cites; in stronger colour, the sentences that support "
    "the answer."
)

# ----------------------------------------------------------------------------- matching
# A passage's text, as the library extracted it, and the same passage as the viewer reads it can
# differ in line breaks, spacing, hyphens at line ends (PDFium marks them U+FFFE or drops them),
# ligatures, quotes and dashes. What survives all of those is the sequence of letters and digits.

_PIECE = 16  # letters per anchor of the fuzzy match
_MIN_SHARE = 0.35  # of a passage's anchors found in order, for a fuzzy match to count


def _keyed(text: str) -> tuple[str, list[int]]:
    """`text`'s letters and digits, case-folded (NFKC: ligatures split), with each one's index
    in `text`."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if not ch.isalnum():
            continue
        if ch.isascii():
            chars.append(ch.lower())
            where.append(i)
            continue
        for c in unicodedata.normalize("NFKC", ch).casefold():
            if c.isalnum():
                chars.append(c)
                where.append(i)
    return "".join(chars), where


@dataclass(frozen=True)
class Match:
    """Where a needle was found in a haystack: [start, end) in the haystack; [needle_start,
    needle_end) the part of the needle that was found; share of the needle's anchors found."""

    start: int
    end: int
    needle_start: int
    needle_end: int
    share: float = 1.0


def find_text(
    haystack: str, needle: str, min_share: float = _MIN_SHARE, min_anchors: int = 4
) -> Match | None:
    """Find `needle` in `haystack`, tolerant of spacing, line breaks, hyphenation and case; when
    the texts differ beyond that (another extraction, a passage that runs onto the next page),
    the placement that most of its 16-letter anchors agree on, if they are at least `min_share`
    of them or `min_anchors` in number, widened letter by letter while the texts agree."""
    hay, hay_at = _keyed(haystack)
    key, key_at = _keyed(needle)
    if not key or not hay:
        return None
    pos = hay.find(key)
    if pos >= 0:
        ks, ke, hs, he = 0, len(key), pos, pos + len(key)
        share = 1.0
    else:
        if len(key) < 2 * _PIECE:
            return None
        placed = _anchored(hay, key)
        if placed is None:
            return None
        ks, ke, hs, he, found, total = placed
        share = found / total
        if share < min_share and found < min_anchors:
            return None
        while ks > 0 and hs > 0 and key[ks - 1] == hay[hs - 1]:
            ks, hs = ks - 1, hs - 1
        while ke < len(key) and he < len(hay) and key[ke] == hay[he]:
            ke, he = ke + 1, he + 1
    start, end = hay_at[hs], hay_at[he - 1] + 1
    n_start, n_end = key_at[ks], key_at[ke - 1] + 1
    # Punctuation at the ends (a closing full stop, an opening quote) where both texts have it.
    if ke == len(key):
        for ch in needle[n_end:].rstrip():
            if end >= len(haystack) or haystack[end] != ch:
                break
            end, n_end = end + 1, n_end + 1
    if ks == 0:
        for ch in reversed(needle[:n_start].lstrip()):
            if start <= 0 or haystack[start - 1] != ch:
                break
            start, n_start = start - 1, n_start - 1
    return Match(start, end, n_start, n_end, share)


def _anchored(hay: str, key: str) -> tuple[int, int, int, int, int, int] | None:
    """The placement of `key` in `hay` that most anchors (16-letter pieces) agree on:
    (key start, key end, hay start, hay end, anchors found, anchors in all)."""
    offsets = list(range(0, len(key) - _PIECE + 1, _PIECE))
    # Each anchor votes for a shift (its place in the page minus its place in the passage);
    # anchors whose shifts agree (within a few letters lost or gained) describe one placement.
    votes: list[tuple[int, int]] = []  # (shift, anchor offset)
    for off in offsets:
        piece = key[off : off + _PIECE]
        at = hay.find(piece)
        while at >= 0:
            votes.append((at - off, off))
            at = hay.find(piece, at + 1)
    if not votes:
        return None
    votes.sort()
    tolerance = max(24, len(key) // 10)
    best: list[tuple[int, int]] = []
    best_count = 0
    lo = 0
    for hi in range(len(votes)):
        while votes[hi][0] - votes[lo][0] > tolerance:
            lo += 1
        count = len({o for _s, o in votes[lo : hi + 1]})
        if count > best_count:
            best, best_count = votes[lo : hi + 1], count
    anchors = sorted({o: s for s, o in best}.items())  # offset -> shift
    first_off, first_shift = anchors[0]
    last_off, last_shift = anchors[-1]
    return (
        first_off,
        last_off + _PIECE,
        first_off + first_shift,
        min(len(hay), last_off + last_shift + _PIECE),
        len(anchors),
        len(offsets),
    )


def find_sentences(
    text: str, start: int, end: int, sentences: list[str] | tuple[str, ...]
) -> list[tuple[int, int]]:
    """Spans of `sentences` inside text[start:end] (each matched tolerantly; missing ones left
    out), in text order."""
    spans = []
    region = text[start:end]
    for sentence in sentences:
        m = find_text(region, sentence, min_share=0.6, min_anchors=10**6)
        if m is not None:
            spans.append((start + m.start, start + m.end))
    return sorted(set(spans))


def page_title(name: str, page_index: int | None, label: str = "") -> str:
    """'refman.pdf · page 11 (PDF page 15)' where the printed label differs from the index."""
    if page_index is None:
        return f"<b>{name}</b>"
    number = str(page_index + 1)
    where = f"page {label} (PDF page {number})" if label and label != number else f"page {number}"
    return f"<b>{name}</b> &nbsp;·&nbsp; {where}"


# ----------------------------------------------------------------------------- PDF view
@dataclass
class PageMarks:
    """What is painted over one page: polygons in page points (origin top left)."""

    passage: list[QPolygonF] = field(default_factory=list)
    support: list[QPolygonF] = field(default_factory=list)


class PassageView(QPdfView):
    """A multi-page, fit-to-width QPdfView that paints passage marks over its pages and brings
    a place on a page into view once it has its size, and keeps it there through resizes. Once
    the reader scrolls, the place kept is theirs (the point at the top of the view): QPdfView
    alone keeps the pixel offset, which at another width is another page."""

    LEAD_PX = 80  # room left above the passage

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPageMode(QPdfView.PageMode.MultiPage)
        self.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        self.marks: dict[int, PageMarks] = {}
        # (page, y in points, cited): a cited place (shown a little below the top) or the
        # reader's (exactly at the top).
        self.target: tuple[int, float, bool] | None = None
        self._steering = 0
        self._layout_key: tuple | None = None
        self._tops: list[int] = []
        self._sizes: list[tuple[int, int]] = []
        self._left: list[int] = []
        self._points: list[tuple[int, int]] = []  # page sizes in pixels at scale 1
        # QPdfView's layout uses the screen's resolution as of its creation.
        screen = QGuiApplication.primaryScreen()
        self._resolution = (screen.logicalDotsPerInch() if screen else 72.0) / 72.0
        self.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.documentChanged.connect(self._watch)

    def _watch(self, doc: QPdfDocument | None) -> None:
        if doc is not None:  # another file loaded into the same document: lay it out anew
            doc.statusChanged.connect(self._forget_layout)
        self._forget_layout()

    def _forget_layout(self, *_args) -> None:
        self._layout_key = None
        self._points = []

    # ------------------------------------------------------------------ steering
    @contextlib.contextmanager
    def steering(self):
        """Scroll changes inside are the viewer's own (loading, resizing), not the reader's."""
        self._steering += 1
        try:
            yield
        finally:
            self._steering -= 1

    def go_to(self, page: int, y_points: float = 0.0) -> None:
        self.target = (page, y_points, True)
        self.apply_target()

    def _scrolled(self, value: int) -> None:
        if self._steering:
            return
        # The reader has taken over: keep their place from now on.
        self._layout()
        doc = self.document()
        if not self._tops or doc is None:
            self.target = None
            return
        page = max(0, bisect.bisect_right(self._tops, value) - 1)
        scale = self._sizes[page][0] / max(1.0, doc.pagePointSize(page).width())
        self.target = (page, (value - self._tops[page]) / scale, False)

    def resizeEvent(self, event) -> None:
        with self.steering():
            super().resizeEvent(event)  # QPdfView lays the pages out for the new width here
        self.apply_target()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.apply_target()

    def apply_target(self) -> bool:
        """Scroll the target into view; False while that cannot be done right (not shown, no
        size yet, no document): it is tried again at the next resize or show."""
        doc = self.document()
        if (
            self.target is None
            or not self.isVisible()
            or doc is None
            or doc.status() != QPdfDocument.Status.Ready
            or self.viewport().width() <= self.documentMargins().left() * 4
        ):
            return False
        page, y_points, cited = self.target
        rect = self.page_rect(page)
        if rect is None:
            return False
        scale = rect.width() / max(1.0, doc.pagePointSize(page).width())
        if cited:
            # The passage a little below the top, and the page still under the line 40% down
            # the view, where QPdfView reads its current page from.
            height = self.viewport().height()
            inside = min(y_points * scale - self.LEAD_PX, rect.height() - 0.4 * height - 3)
        else:
            inside = y_points * scale
        with self.steering():
            self.verticalScrollBar().setValue(round(rect.top() + max(0.0, inside)))
        self.viewport().update()
        return True

    # ------------------------------------------------------------------ layout
    def _layout(self) -> None:
        """Each page's place in the scrolled document, as QPdfView (MultiPage, FitToWidth)
        lays it out: page sizes in pixels at the screen's resolution, scaled so the width
        fills the viewport less the margins (each size rounded as Qt rounds), pages stacked
        with pageSpacing between and documentMargins around."""
        doc = self.document()
        margins = self.documentMargins()
        width = self.viewport().width()
        key = (id(doc), doc.pageCount() if doc else 0, width, self.pageSpacing(), margins)
        if key == self._layout_key:
            return
        self._layout_key = key
        self._tops, self._sizes, self._left = [], [], []
        if doc is None or doc.status() != QPdfDocument.Status.Ready:
            return
        if len(self._points) != doc.pageCount():
            sizes = (doc.pagePointSize(i) for i in range(doc.pageCount()))
            self._points = [
                (_qround(s.width() * self._resolution), _qround(s.height() * self._resolution))
                for s in sizes
            ]
        room = width - margins.left() - margins.right()
        total_width = 0
        for w0, h0 in self._points:
            factor = room / w0 if w0 else 1.0
            w, h = _qround(w0 * factor), _qround(h0 * factor)
            self._sizes.append((w, h))
            total_width = max(total_width, w)
        total_width += margins.left() + margins.right()
        y = margins.top()
        for w, h in self._sizes:
            self._tops.append(y)
            self._left.append((max(total_width, width) - w) // 2)
            y += h + self.pageSpacing()

    def page_rect(self, page: int) -> QRectF | None:
        """The page's rectangle in document pixels (scroll offsets not applied)."""
        self._layout()
        if not 0 <= page < len(self._tops):
            return None
        w, h = self._sizes[page]
        return QRectF(self._left[page], self._tops[page], w, h)

    def page_to_view(self, page: int) -> QTransform | None:
        """Page points -> viewport pixels, for the page as it is scrolled now."""
        rect = self.page_rect(page)
        doc = self.document()
        if rect is None or doc is None:
            return None
        scale = rect.width() / max(1.0, doc.pagePointSize(page).width())
        dx = rect.left() - self.horizontalScrollBar().value()
        dy = rect.top() - self.verticalScrollBar().value()
        return QTransform(scale, 0, 0, scale, dx, dy)

    def marked_rects(self, page: int, strong: bool = False) -> list[QRectF]:
        """Viewport rectangles of the page's marks (for tests and accessibility)."""
        marks = self.marks.get(page)
        transform = self.page_to_view(page)
        if marks is None or transform is None:
            return []
        polys = marks.support if strong else marks.passage
        return [transform.map(p).boundingRect() for p in polys]

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if not self.marks:
            return
        painter = QPainter(self.viewport())
        try:
            painter.setPen(Qt.PenStyle.NoPen)
            view = QRectF(self.viewport().rect())
            for page, marks in self.marks.items():
                transform = self.page_to_view(page)
                if transform is None:
                    continue
                page_rect = transform.mapRect(
                    QRectF(QPointF(0, 0), self.document().pagePointSize(page))
                )
                if not page_rect.intersects(view):
                    continue
                painter.setTransform(transform)
                painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Multiply)
                for polys, color in ((marks.passage, PASSAGE_PDF), (marks.support, SUPPORT_PDF)):
                    painter.setBrush(color)
                    for poly in polys:
                        painter.drawPolygon(poly)
                if marks.passage:
                    # A bar in the page's left margin, so the passage is found at a glance.
                    top = min(p.boundingRect().top() for p in marks.passage)
                    bottom = max(p.boundingRect().bottom() for p in marks.passage)
                    left = min(p.boundingRect().left() for p in marks.passage)
                    painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
                    painter.setBrush(MARGIN_BAR)
                    painter.drawRect(QRectF(max(2.0, left - 12), top, 3, bottom - top))
        finally:
            painter.end()


def _qround(value: float) -> int:
    """qRound: halves away from zero (Python's round() goes to even)."""
    return int(value + 0.5) if value >= 0 else -int(-value + 0.5)


# ----------------------------------------------------------------------------- text loading
class _TextLoader(QObject):
    loaded = Signal(int, object, str)  # request id, TextShown or None, error

    def load(self, request: int, path: str, source: dict) -> None:
        def work() -> None:
            from app.core.documents import DocumentError, read_pages

            try:
                pages = [(p.number, p.text) for p in read_pages(path)]
                self.loaded.emit(request, locate_in_pages(pages, source), "")
            except DocumentError as exc:
                self.loaded.emit(request, None, exc.message)
            except Exception as exc:  # never let a viewer crash the app
                self.loaded.emit(request, None, f"The file could not be shown ({exc}).")

        threading.Thread(target=work, name="confidant-viewer", daemon=True).start()


@dataclass(frozen=True)
class TextShown:
    """A document as the text view shows it, with the passage and its support located."""

    text: str
    passage: tuple[int, int] | None
    support: list[tuple[int, int]]


def locate_in_pages(pages: list[tuple[int | None, str]], source: dict) -> TextShown:
    """Join the pages (with page headers when there are several) and find the source's passage:
    at its recorded offsets when the text there still reads the same, else by tolerant search,
    first in its page, then anywhere."""
    parts, offsets, pos = [], {}, 0
    for number, text in pages:
        header = f"— Page {number} —\n\n" if number is not None and len(pages) > 1 else ""
        offsets[number] = (pos + len(header), pos + len(header) + len(text))
        parts.append(header + text)
        pos += len(header) + len(text) + 2
    full = "\n\n".join(parts)
    passage = source.get("text", "")
    span: tuple[int, int] | None = None
    base, limit = offsets.get(source.get("page"), offsets.get(None, (0, len(full))))
    start, end = base + int(source.get("start", 0) or 0), base + int(source.get("end", 0) or 0)
    if passage and 0 <= start < end <= len(full) and full[start:end] == passage:
        span = (start, end)
    elif passage:
        m = find_text(full[base:limit], passage)
        if m is None and (base, limit) != (0, len(full)):
            m = find_text(full, passage)
            base = 0
        if m is not None:
            span = (base + m.start, base + m.end)
    support = find_sentences(full, *span, source.get("support") or ()) if span else []
    return TextShown(full, span, support)


# ----------------------------------------------------------------------------- the dialog
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
        self.pdf_view = PassageView(self)
        self.pdf_view.setDocument(self.pdf)
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
        self.highlighted = False  # the passage was found and marked
        self.highlighted_text = ""  # the text marked as the passage
        self.support_texts: list[str] = []  # the text marked as supporting sentences

    # ------------------------------------------------------------------ public
    @property
    def current_page(self) -> int:
        """0-based page the PDF view shows (QPdfView's own reading: the page under the line
        40% down the view), or -1 when showing text."""
        if self.stack.currentWidget() is not self.pdf_view:
            return -1
        return self.pdf_view.pageNavigator().currentPage()

    @property
    def wanted_page(self) -> int:
        return self._wanted_page

    def search_hits(self) -> int:
        """Lines of the passage marked on the cited page (0: not found)."""
        marks = self.pdf_view.marks.get(self._wanted_page)
        return len(marks.passage) if marks else 0

    def show_source(self, source: dict) -> None:
        self.source = dict(source)
        path = Path(source.get("path", ""))
        page = source.get("page")
        self.title.setText(page_title(path.name, page - 1 if page else None))
        self.setWindowTitle(f"{path.name} – Source [{source.get('n', '')}]")
        self.passage_label.setText("")
        self.highlighted = False
        self.highlighted_text = ""
        self.support_texts = []
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
            self._loader.load(self._request, str(path), self.source)
        self.show()
        self.raise_()
        self.activateWindow()

    def open_externally(self) -> None:
        """Hand the file to the program the system opens it with, and say so when there is
        none (or the file has gone), instead of doing nothing."""
        path = self.source.get("path")
        if not path:
            return
        if not Path(path).exists():
            self.passage_label.setText(
                f"“{Path(path).name}” is no longer at {Path(path).parent}: it was moved or "
                "deleted. The passage above is what the library kept of it."
            )
            return
        if QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
            self.passage_label.setText(f"Opened “{Path(path).name}” in its own program.")
        else:
            self.passage_label.setText(
                f"No program on this computer opens “{Path(path).name}”. It is at "
                f"{Path(path).parent}."
            )

    # ------------------------------------------------------------------ PDF
    def _show_pdf(self, path: Path, page: int | None) -> bool:
        view = self.pdf_view
        view.marks = {}
        view.target = None
        with view.steering():
            self.pdf.close()
            if self.pdf.load(str(path)) != QPdfDocument.Error.None_:
                return False
        self.stack.setCurrentWidget(view)
        self._wanted_page = max(0, min((page or 1) - 1, self.pdf.pageCount() - 1))
        index = self._wanted_page
        self.title.setText(page_title(path.name, index, self.pdf.pageLabel(index)))
        top = self._mark_pdf_passage(index)
        # Applied now if the view is shown and sized, else at its next resize/show.
        view.go_to(index, top if top is not None else 0.0)
        view.viewport().update()
        return True

    def _mark_pdf_passage(self, index: int) -> float | None:
        """Mark the passage (and its support) on page `index`, and on the next page where the
        passage runs on; the top of the marks in points, or None when it is not on the page."""
        passage = self.source.get("text", "")
        page_text = self.pdf.getAllText(index).text()
        m = find_text(page_text, passage) if passage else None
        if m is None:
            self.passage_label.setText(
                "Could not find the passage on this page; it is on page "
                f"{self.source.get('page') or index + 1} of the file as extracted. "
                f"It begins: “{snippet(passage, 90)}”"
            )
            return None
        support = self.source.get("support") or ()
        spans = find_sentences(page_text, m.start, m.end, support)
        marks = {index: self._page_marks(index, (m.start, m.end), spans)}
        found = [page_text[m.start : m.end]]
        # A passage that runs across the page break: its rest at the top of the next page.
        rest = passage[m.needle_end :]
        if len(_keyed(rest)[0]) >= _PIECE and index + 1 < self.pdf.pageCount():
            next_text = self.pdf.getAllText(index + 1).text()
            n = find_text(next_text, rest)
            if n is not None and len(_keyed(next_text[: n.start])[0]) < 2 * _PIECE:
                next_spans = find_sentences(next_text, n.start, n.end, support)
                marks[index + 1] = self._page_marks(index + 1, (n.start, n.end), next_spans)
                found.append(next_text[n.start : n.end])
                self.support_texts += [next_text[s:e] for s, e in next_spans]
        self.support_texts = [page_text[s:e] for s, e in spans] + self.support_texts
        self.pdf_view.marks = marks
        self.highlighted = True
        self.highlighted_text = "\n".join(found)
        self.passage_label.setText(HIGHLIGHTED_SUPPORT if self.support_texts else HIGHLIGHTED)
        polys = marks[index].passage
        return min(p.boundingRect().top() for p in polys) if polys else 0.0

    def _page_marks(
        self, page: int, passage: tuple[int, int], support: list[tuple[int, int]]
    ) -> PageMarks:
        return PageMarks(
            passage=self._bounds(page, *passage),
            support=[poly for s, e in support for poly in self._bounds(page, s, e)],
        )

    def _bounds(self, page: int, start: int, end: int) -> list[QPolygonF]:
        return list(self.pdf.getSelectionAtIndex(page, start, end - start).bounds())

    # ------------------------------------------------------------------ text
    def _text_loaded(self, request: int, shown: TextShown | None, error: str) -> None:
        if request != self._request:
            return  # another source was asked for since
        if error or shown is None:
            self._show_message(error or "The file could not be shown.")
            return
        self.text.setPlainText(shown.text)
        self.stack.setCurrentWidget(self.text)
        if shown.passage is None:
            self.text.setExtraSelections([])
            self.passage_label.setText(
                "Could not find the passage in the file as it reads now; it may have changed "
                f"since it was added. It begins: “{snippet(self.source.get('text', ''), 90)}”"
            )
            return
        start, end = shown.passage
        selections = [self._selection(start, end, PASSAGE_TEXT)]
        selections += [self._selection(s, e, SUPPORT_TEXT) for s, e in shown.support]
        self.text.setExtraSelections(selections)
        self.highlighted = True
        self.highlighted_text = shown.text[start:end]
        self.support_texts = [shown.text[s:e] for s, e in shown.support]
        self.passage_label.setText(HIGHLIGHTED_SUPPORT if shown.support else HIGHLIGHTED)
        # Scroll the passage to the top third, not the very bottom edge.
        bar = self.text.verticalScrollBar()
        at = QTextCursor(self.text.document())
        at.setPosition(start)
        self.text.setTextCursor(at)
        self.text.ensureCursorVisible()
        rect = self.text.cursorRect(at)
        bar.setValue(bar.value() + rect.top() - self.text.viewport().height() // 4)

    def _selection(self, start: int, end: int, color: QColor) -> QTextEdit.ExtraSelection:
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        selection = QTextEdit.ExtraSelection()
        selection.cursor = cursor
        fmt = QTextCharFormat()
        fmt.setBackground(color)
        selection.format = fmt
        return selection

    def _show_message(self, text: str) -> None:
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
