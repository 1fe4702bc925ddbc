"""Void Qt calls leave Python's None alone (PySide6 6.12.0 dropped one reference per call).

Before Python 3.12 None is an ordinary reference-counted object, so a binding that hands back
None without taking a reference walks its count down on every call, until the interpreter
aborts with "none_dealloc: deallocating None". The count is read after each batch, so a leaking
binding fails here with the drop it caused instead of aborting the whole test run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from PySide6.QtCore import QCoreApplication, QRectF
from PySide6.QtWidgets import QLabel, QWidget

from app.gui.viewer import SourceViewer
from tests.gui.citation_docs import WANTED, big_pdf, citation

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="None is immortal from Python 3.12: its count never moves"
)

SLACK = 50  # what Qt's own bookkeeping may take or give back; a leak loses one per call


def _none_lost(call: Callable[[], object], calls: int, batch: int = 100) -> int:
    """References to None lost over `calls` calls; stops at the first batch that loses too many
    (small batches: a leaking binding then costs little more than SLACK before the test ends)."""
    start = sys.getrefcount(None)
    done = 0
    while done < calls:
        for _ in range(min(batch, calls - done)):
            call()
        done += batch
        lost = start - sys.getrefcount(None)
        if lost > SLACK:
            return lost
    return start - sys.getrefcount(None)


@pytest.mark.parametrize(
    "name",
    ["QLabel.setText", "QWidget.update", "QWidget.setMinimumWidth", "processEvents"],
)
def test_void_qt_calls_keep_none_alive(qtbot, name):
    label = QLabel("x")
    widget = QWidget()
    qtbot.addWidget(label)
    qtbot.addWidget(widget)
    call = {
        "QLabel.setText": lambda: label.setText("hello"),
        "QWidget.update": widget.update,
        "QWidget.setMinimumWidth": lambda: widget.setMinimumWidth(10),
        "processEvents": QCoreApplication.processEvents,
    }[name]
    assert _none_lost(call, 20_000) <= SLACK


def test_painting_the_pdf_viewer_keeps_none_alive(qtbot, tmp_path):
    """The viewer's paintEvent (Python, over QPdfView) makes many void calls per paint."""
    viewer = SourceViewer(None)
    qtbot.addWidget(viewer)
    viewer.show_source(citation(big_pdf(tmp_path)))
    qtbot.waitExposed(viewer)
    view = viewer.pdf_view
    viewport = view.viewport()

    def marks_on_screen() -> bool:  # what paintEvent draws over QPdfView's pages
        area = QRectF(viewport.rect())
        return any(area.intersects(r) for r in view.marked_rects(WANTED - 1))

    qtbot.waitUntil(marks_on_screen, timeout=10_000)
    # grab() runs paintEvent synchronously whether or not the offscreen window is exposed.
    assert _none_lost(viewport.grab, 1_000, batch=10) <= SLACK
