"""Run by tests/gui/test_x11_citation.py on a real X server: launch the window, open one citation
first thing, and report what the viewer shows once it has settled.

    python -m tests.gui.x11_viewer_probe SOURCE_JSON

CONFIDANT_HOME must name an empty data directory. Prints one JSON line (the report), then keeps
the window up until a line arrives on stdin (the test takes its screenshot meanwhile).
"""

from __future__ import annotations

import json
import sys
import threading
import time


def main() -> int:
    from PySide6.QtCore import QRectF, QTimer
    from PySide6.QtWidgets import QApplication

    from app.config import data_dir
    from app.gui.main import create_application
    from app.gui.main_window import MainWindow
    from app.services import Services

    source = json.loads(sys.argv[1])
    app = create_application(["confidant-probe"])
    services = Services(data_dir())
    window = MainWindow(services)
    window.show()
    window.open_source(source)  # the first citation after launch: the viewer is created now
    viewer = window.viewer
    wanted = int(source["page"]) - 1
    deadline = time.monotonic() + 30

    def settled() -> bool:
        if not viewer.isVisible() or viewer.current_page != wanted:
            return False
        rects = viewer.pdf_view.marked_rects(wanted)
        if not rects:
            return False
        image = viewer.pdf_view.viewport().grab().toImage()
        r = rects[0].toRect().intersected(image.rect())
        dark = sum(
            1
            for y in range(r.top(), r.bottom())
            for x in range(r.left(), r.right(), 2)
            if image.pixelColor(x, y).lightness() < 90
        )
        return dark > 10  # the page is rendered, print under the mark

    view = viewer.pdf_view

    def on_screen(rect: QRectF) -> list[float]:
        origin = view.viewport().mapToGlobal(view.viewport().rect().topLeft())
        return [rect.left() + origin.x(), rect.top() + origin.y(), rect.width(), rect.height()]

    def report(settled_: bool) -> None:
        line = {
            "settled": settled_,
            "wanted": wanted,
            "current_page": viewer.current_page,
            "title": viewer.title.text(),
            "label": viewer.passage_label.text(),
            "marks": [on_screen(r) for r in view.marked_rects(wanted)],
            "support": [on_screen(r) for r in view.marked_rects(wanted, strong=True)],
            "viewport": on_screen(QRectF(view.viewport().rect())),
            "platform": QApplication.platformName(),
        }
        print(json.dumps(line), flush=True)

    # Polled from the event loop (a loop of processEvents() calls would leak references to
    # None in PySide6 6.12 on Python 3.11, and in the end crash).
    stable = [0]
    done = threading.Event()

    def poll() -> None:
        if stable[0] < 10:
            stable[0] = stable[0] + 1 if settled() else 0
            if stable[0] >= 10:
                report(True)
            elif time.monotonic() > deadline:
                report(False)
                stable[0] = 10
        elif done.is_set():
            app.quit()

    threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    QTimer.singleShot(120_000, app.quit)
    app.exec()
    window.shutdown()
    services.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
