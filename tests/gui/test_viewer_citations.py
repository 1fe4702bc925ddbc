"""The source viewer lands on the cited page and marks the whole passage, offscreen.

Real PDFs (tests/pdfmaker.py) read by the real QtPdf, and the passage text as the library's own
extraction gives it. The first test is the first-open bug: a citation opened first thing after
the viewer is created, deep in a long PDF.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QImage

from app.gui.viewer import (
    HIGHLIGHTED_SUPPORT,
    SUPPORT_TEXT,
    SourceViewer,
    find_sentences,
    find_text,
    page_title,
)
from tests.gui.citation_docs import (
    PASSAGE_LINES,
    WANTED,
    big_pdf,
    citation,
    extracted,
)
from tests.pdfmaker import make_pdf


@pytest.fixture
def viewer(qtbot):
    v = SourceViewer(None)
    qtbot.addWidget(v)
    return v


def _settled(qtbot, viewer, page: int) -> None:
    """Shown, laid out, and QPdfView's own idea of its current page is `page`."""
    qtbot.waitExposed(viewer)
    qtbot.waitUntil(lambda: viewer.current_page == page, timeout=10_000)
    qtbot.wait(50)  # late resizes (style, layout) would move it again: it must stay
    assert viewer.current_page == page


def _union(rects: list[QRectF]) -> QRectF:
    out = QRectF(rects[0])
    for r in rects[1:]:
        out = out.united(r)
    return out


def _is_mark(color: QColor) -> bool:
    """A pixel of the overlay (Multiply over white): yellow-orange, not grey."""
    return color.red() > 200 and color.green() > 150 and color.blue() < 200


def _pixels(image: QImage, rect: QRectF, test) -> int:
    r = rect.toRect().intersected(image.rect())
    return sum(
        1
        for y in range(r.top(), r.bottom(), 2)
        for x in range(r.left(), r.right(), 2)
        if test(image.pixelColor(x, y))
    )


def _wait_rendered(qtbot, viewer, rect: QRectF) -> QImage:
    """The viewport once the page under `rect` is drawn (pages render on a thread)."""
    holder: list[QImage] = []

    def drawn() -> bool:
        image = viewer.pdf_view.viewport().grab().toImage()
        holder[:] = [image]
        return _pixels(image, rect, lambda c: c.lightness() < 90) > 20

    qtbot.waitUntil(drawn, timeout=10_000)
    return holder[0]


# ----------------------------------------------------------------------------- first open
def test_first_citation_after_creation_lands_on_its_page(qtbot, viewer, tmp_path, shots):
    pdf = big_pdf(tmp_path, blank_fillers=True)
    source = citation(pdf)
    viewer.show_source(source)  # first thing: the dialog has never been shown or laid out
    _settled(qtbot, viewer, WANTED - 1)
    view = viewer.pdf_view
    rects = view.marked_rects(WANTED - 1)
    assert len(rects) == PASSAGE_LINES
    passage = _union(rects)
    assert QRectF(view.viewport().rect()).contains(passage), (passage, view.viewport().rect())
    # Only the cited page has text: print inside the marks proves it is that page on screen.
    image = _wait_rendered(qtbot, viewer, passage)
    assert _pixels(image, passage, _is_mark) > 200
    viewer.grab().save(str(shots / "10-viewer-first-open.png"))


def test_place_kept_through_resizes_the_readers_once_they_scroll(qtbot, viewer, tmp_path):
    pdf = big_pdf(tmp_path)
    viewer.show_source(citation(pdf))
    _settled(qtbot, viewer, WANTED - 1)
    viewer.resize(500, 600)
    qtbot.waitUntil(lambda: viewer.pdf_view.viewport().width() < 500, timeout=5_000)
    _settled(qtbot, viewer, WANTED - 1)
    rect = _union(viewer.pdf_view.marked_rects(WANTED - 1))
    assert QRectF(viewer.pdf_view.viewport().rect()).contains(rect)
    # The reader scrolls away: a later resize keeps their page, not the cited one, and not
    # the pixel offset (which at another width is another page).
    bar = viewer.pdf_view.verticalScrollBar()
    bar.setValue(bar.value() + 20 * viewer.pdf_view.viewport().height())
    away = viewer.current_page
    assert away > WANTED - 1 + 5
    for size in ((900, 700), (450, 800)):
        viewer.resize(*size)
        qtbot.waitUntil(lambda s=size: viewer.pdf_view.width() < s[0], timeout=5_000)
        qtbot.wait(50)
        assert abs(viewer.current_page - away) <= 1, (size, viewer.current_page, away)


def test_layout_matches_qpdfview(qtbot, viewer, tmp_path):
    """The overlay places pages by its own copy of QPdfView's layout; Qt's navigator agrees."""
    pdf = big_pdf(tmp_path, pages=120)
    viewer.show_source({"n": 1, "path": str(pdf), "page": 1, "text": "Section 1"})
    qtbot.waitExposed(viewer)
    view = viewer.pdf_view
    bar = view.verticalScrollBar()
    last = view.page_rect(119)
    assert last is not None
    # The document's height as Qt sized the scroll range equals ours.
    margins = view.documentMargins()
    spacing = view.pageSpacing()
    assert bar.maximum() + view.viewport().height() == int(
        last.bottom() + spacing + margins.bottom()
    )
    for page in (3, 57, 100):
        rect = view.page_rect(page)
        bar.setValue(int(rect.top() + 0.4 * view.viewport().height() - 10))
        qtbot.waitUntil(lambda p=page: viewer.current_page == p, timeout=2_000)


# ----------------------------------------------------------------------------- the passage
def test_whole_passage_marked_and_support_stronger(qtbot, viewer, tmp_path):
    pdf = big_pdf(tmp_path, pages=3, wanted=3)
    source = citation(pdf, page=3)
    viewer.show_source(source)
    _settled(qtbot, viewer, 2)
    assert viewer.highlighted
    assert viewer.search_hits() == PASSAGE_LINES  # every line of the passage, not 6 words
    marked = " ".join(viewer.highlighted_text.split())
    assert marked.startswith("The read.table function")
    assert marked.endswith("fewer field than columns.")
    assert "Unrelated" not in marked and "Chapter 12" not in marked
    assert len(viewer.support_texts) == 1
    assert " ".join(viewer.support_texts[0].split()).startswith("The argu")
    assert viewer.passage_label.text() == HIGHLIGHTED_SUPPORT
    view = viewer.pdf_view
    passage = view.marked_rects(2)
    support = view.marked_rects(2, strong=True)
    assert len(support) == 3  # "The argu-" / "ment header ... as its" / "first line."
    area = _union(passage).adjusted(-1, -1, 1, 1)
    assert all(area.contains(r) for r in support)
    image = _wait_rendered(qtbot, viewer, _union(passage))

    def mean_blue(rect: QRectF) -> float:
        r = rect.toRect().intersected(image.rect())
        values = [
            image.pixelColor(x, r.center().y()).blue()
            for x in range(r.left() + 2, r.right() - 2)
            if image.pixelColor(x, r.center().y()).lightness() > 120  # paper, not print
        ]
        return sum(values) / len(values)

    # The passage is pale yellow on the paper; support sentences a strong orange over it.
    assert mean_blue(passage[0]) > 140
    assert mean_blue(support[-1]) < 80


def test_passage_text_as_one_line_still_marked(qtbot, viewer, tmp_path):
    """Citations whose text differs from Qt's in spacing and hyphenation (the refman.pdf case)."""
    pdf = big_pdf(tmp_path, pages=2, wanted=2)
    source = citation(pdf, page=2)
    flat = " ".join(source["text"].replace("argu-\nment", "argument").split())
    viewer.show_source({**source, "text": flat, "start": 0, "end": 0, "support": []})
    _settled(qtbot, viewer, 1)
    assert viewer.search_hits() == PASSAGE_LINES
    assert viewer.passage_label.text().startswith("Highlighted")


def test_missing_passage_is_said_not_claimed(qtbot, viewer, tmp_path):
    pdf = big_pdf(tmp_path, pages=4, wanted=3)
    source = {**citation(pdf, page=3), "text": "A sentence that is on no page of this file at all."}
    viewer.show_source(source)
    _settled(qtbot, viewer, 2)
    assert not viewer.highlighted
    assert viewer.search_hits() == 0 and not viewer.pdf_view.marks
    label = viewer.passage_label.text()
    assert label.startswith(
        "Could not find the passage on this page; it is on page 3 of the file as extracted"
    )
    assert "Highlighted" not in label


def test_passage_running_onto_the_next_page(qtbot, viewer, tmp_path):
    pdf = make_pdf(
        tmp_path / "two.pdf",
        [
            "Intro line\nThe budget for the Zephyr project was set in March\nat forty eight",
            "thousand euros for the whole year, approved by the board.\nOther matters.",
        ],
    )
    text = (
        "The budget for the Zephyr project was set in March\nat forty eight\n"
        "thousand euros for the whole year, approved by the board."
    )
    viewer.show_source({"n": 1, "path": str(pdf), "page": 1, "text": text})
    _settled(qtbot, viewer, 0)
    assert set(viewer.pdf_view.marks) == {0, 1}
    assert len(viewer.pdf_view.marks[1].passage) == 1
    assert "approved by the board" in viewer.highlighted_text


# ----------------------------------------------------------------------------- page labels
def _labelled_pdf(tmp_path: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = make_pdf(tmp_path / "plain.pdf", [f"Page text {i}" for i in range(1, 21)])
    writer = PdfWriter()
    for page in PdfReader(plain).pages:
        writer.add_page(page)
    writer.set_page_label(0, 3, style="/r")  # i..iv: the front matter
    writer.set_page_label(4, 19, style="/D", start=1)  # PDF page 5 is printed page 1
    out = tmp_path / "labelled.pdf"
    with out.open("wb") as f:
        writer.write(f)
    return out


def test_header_shows_printed_page_label(qtbot, viewer, tmp_path):
    pdf = _labelled_pdf(tmp_path)
    viewer.show_source({"n": 1, "path": str(pdf), "page": 15, "text": "Page text 15"})
    _settled(qtbot, viewer, 14)
    assert "page 11 (PDF page 15)" in viewer.title.text()
    assert viewer.search_hits() == 1
    viewer.show_source({"n": 2, "path": str(pdf), "page": 2, "text": "Page text 2"})
    _settled(qtbot, viewer, 1)
    assert "page ii (PDF page 2)" in viewer.title.text()


def test_header_without_labels_gives_the_page_alone(qtbot, viewer, tmp_path):
    pdf = make_pdf(tmp_path / "plain.pdf", ["one", "two", "three"])
    viewer.show_source({"n": 1, "path": str(pdf), "page": 3, "text": "three"})
    _settled(qtbot, viewer, 2)
    assert viewer.title.text().endswith("page 3")
    assert "PDF page" not in viewer.title.text()


def test_page_title_formats():
    assert page_title("a.pdf", 14, "11").endswith("page 11 (PDF page 15)")
    assert page_title("a.pdf", 14, "15").endswith("page 15")
    assert page_title("a.pdf", 14, "").endswith("page 15")
    assert page_title("a.md", None) == "<b>a.md</b>"


# ----------------------------------------------------------------------------- text view
def test_text_view_marks_passage_and_support(qtbot, viewer, tmp_path):
    doc = tmp_path / "policy.md"
    doc.write_text(
        "# Holiday policy\n\nIntro words that are not cited.\n\n"
        "Every employee has 27 days of paid holiday per year. Requests go to the team lead "
        "two weeks ahead. Unused days expire in March.\n\nA later paragraph.\n",
        encoding="utf-8",
    )
    passage = (
        "Every employee has 27 days of paid holiday per year. Requests go to the team lead "
        "two weeks ahead. Unused days expire in March."
    )
    viewer.show_source(
        {
            "n": 1,
            "path": str(doc),
            "page": None,
            "text": passage,
            "start": 0,  # stale offsets: found by its text
            "end": 0,
            "support": ["Requests go to the team lead two weeks ahead."],
        }
    )
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.text, timeout=10_000)
    selections = viewer.text.extraSelections()
    assert len(selections) == 2
    assert selections[0].cursor.selectedText() == passage
    assert selections[1].cursor.selectedText() == "Requests go to the team lead two weeks ahead."
    assert selections[1].format.background().color() == SUPPORT_TEXT
    weak = selections[0].format.background().color()
    assert weak.alpha() < SUPPORT_TEXT.alpha()
    assert viewer.passage_label.text() == HIGHLIGHTED_SUPPORT


def test_text_view_missing_passage_is_said(qtbot, viewer, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("Nothing of the cited text is here any more.\n", encoding="utf-8")
    viewer.show_source({"n": 1, "path": str(doc), "page": None, "text": "The old passage text."})
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.text, timeout=10_000)
    assert viewer.text.extraSelections() == []
    assert not viewer.highlighted
    assert viewer.passage_label.text().startswith("Could not find the passage")


# ----------------------------------------------------------------------------- matching
def test_find_text_tolerates_breaks_hyphens_and_case():
    page = "Intro.\r\nThe argu\ufffe\r\nment header says what\r\nthe FILE holds. Next."
    m = find_text(page, "the argument header says what the file holds.")
    assert m is not None
    assert page[m.start : m.end] == "The argu\ufffe\r\nment header says what\r\nthe FILE holds."
    assert find_text(page, "nothing like it at all") is None


def test_find_text_fuzzy_partial_passage():
    """A passage whose tail is on the next page: its head is found, and says where it ends."""
    page = "Header\n" + "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu. " * 2
    passage = page[7:] + "nu xi omicron pi rho sigma tau upsilon phi chi psi omega " * 2
    m = find_text(page, passage)
    assert m is not None and m.start == 7
    assert m.needle_start == 0 and m.needle_end < len(passage)


def test_find_sentences_inside_region_only():
    text = "Yes it is. Other part. Yes it is. End."
    spans = find_sentences(text, 11, len(text), ["Yes it is."])
    assert spans == [(23, 33)]
    assert text[23:33] == "Yes it is."


def test_extraction_matches_qt_text(qtbot, tmp_path):
    """The library's page text (PDFium via pypdfium2) is found in Qt's text of the same page."""
    from PySide6.QtPdf import QPdfDocument

    pdf = big_pdf(tmp_path, pages=3, wanted=3)
    doc = QPdfDocument()
    assert doc.load(str(pdf)) == QPdfDocument.Error.None_
    qt_text = doc.getAllText(2).text()
    m = find_text(qt_text, extracted(pdf, 3))
    assert m is not None and m.share == 1.0
