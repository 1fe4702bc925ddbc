"""`confidant` with no arguments: the window.

Order matters for a fast, safe start: take the single-instance lock, show the window (no model is
touched yet), then load the models in the background with their status in the status bar. On
close: cancel, join the lanes, close the services, release the lock.
"""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger(__name__)


def create_application(argv: list[str] | None = None):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication, QStyleFactory

    from app.gui.resources import icon, style_sheet

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(list(argv if argv is not None else sys.argv[:1]))
    app.setApplicationName("Confidant")
    app.setApplicationDisplayName("Confidant")
    app.setOrganizationName("Confidant")
    app.setDesktopFileName("confidant")
    # The platform's own style follows the system palette (dark mode included); Fusion only where
    # the native style is the bare Windows 9x look or unavailable (offscreen, minimal).
    if app.style().name().lower() in ("windows", "") and "fusion" in [
        s.lower()
        for s in QStyleFactory.keys()  # noqa: SIM118 - a list, not a dict
    ]:
        app.setStyle("Fusion")
    app.setWindowIcon(icon("app"))
    app.setStyleSheet(style_sheet())
    return app


def run_window(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    from PySide6.QtWidgets import QMessageBox

    from app.config import SettingsError, data_dir
    from app.core.instance import AlreadyRunning, InstanceLock

    app = create_application(argv)
    home = data_dir()
    try:
        lock = InstanceLock(home, "window").acquire()
    except AlreadyRunning as exc:
        QMessageBox.information(None, "Confidant is already open", str(exc))
        return 2
    services = None
    window = None
    try:
        from app.gui.main_window import MainWindow
        from app.services import Services

        try:
            services = Services(home)
        except SettingsError as exc:
            QMessageBox.warning(None, "Confidant", f"{exc}\n\nConfidant starts with the defaults.")
            from app.config import Settings

            services = Services(home, Settings())
        window = MainWindow(services)
        window.show()
        log.info("window visible after %.0f ms", (time.perf_counter() - started) * 1000)
        window.start_background_work()
        app.aboutToQuit.connect(window.shutdown)
        return app.exec()
    finally:
        if window is not None:
            window.shutdown()
        if window is not None and not window.lanes_stopped:
            # A lane is still inside an uncancellable call (a large model loading): leave the
            # store to the OS rather than close it under a running thread.
            log.warning("a lane did not stop; leaving the library to close at exit")
        elif services is not None:
            try:
                services.close()
            except Exception:
                log.exception("closing the library failed")
        lock.release()
