"""`confidant` with no arguments: the window.

Order matters for a fast, safe start: take the single-instance lock, show the window (no model is
touched yet), then load the models in the background with their status in the status bar. A
second launch while a window runs brings that window to the front (running.py) and exits 0.

Closing is ordered so that the library is free again at once: the window hides, every job is
cancelled, the jobs that use the library end, the library is closed and its lock released.
Loads that cannot be interrupted (the model, the embedder) do not hold the library and are not
waited for. Then the process ends without Python's own teardown, which spent 3-6 s freeing
torch's and Chroma's modules on a two-core machine with nothing left to save; the model's
process is ended as Python's exit would end it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
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


# A closing window holds the lock until its jobs that use the library have stopped and the
# library is closed (Chroma's process writes what it was sent): a launch meanwhile waits this long.
CLOSING_WAIT_S = 30.0
LIBRARY_WAIT_S = 30.0


def _claim(lock, home) -> int | None:
    """Take the library's lock for this window. None: taken. Otherwise the exit code: 0 when
    the window already running came to the front, 2 when refused (the user was told why)."""
    from PySide6.QtWidgets import QMessageBox

    from app.core.instance import AlreadyRunning
    from app.gui.running import bring_forward

    deadline = time.monotonic() + CLOSING_WAIT_S
    while True:
        try:
            lock.acquire()
            return None
        except AlreadyRunning as exc:
            refusal = exc
        if bring_forward(home):
            log.info("the window already open came to the front")
            return 0
        # A window that no longer answers is closing (it stops listening first): wait for it.
        # Anything else (a command-line task) is named, with what to do.
        if refusal.role != "window" or time.monotonic() > deadline:
            title = "Confidant is already open" if refusal.role == "window" else "Confidant is busy"
            QMessageBox.information(None, title, refusal.plain)
            return 2
        time.sleep(0.1)


def _end_fast(code: int) -> None:
    """End the process now, as Python's exit would, minus its teardown (see the docstring)."""
    import multiprocessing
    import os

    for child in multiprocessing.active_children():  # daemonic: Python's exit ends them too
        child.terminate()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def run_window(argv: list[str] | None = None, *, end_process: bool | None = None) -> int:
    """Run the window until it is closed. `end_process`: end the process right after (default:
    when this call made the QApplication, i.e. it is the program, not a test)."""
    started = time.perf_counter()
    from PySide6.QtWidgets import QApplication

    from app.config import data_dir
    from app.core.instance import InstanceLock

    if end_process is None:
        end_process = QApplication.instance() is None
    app = create_application(argv)
    home = data_dir()
    _log_to_file(home)
    lock = InstanceLock(home, "window")
    refused = _claim(lock, home)
    if refused is not None:
        return refused
    from app.gui.running import RaiseServer

    server = RaiseServer(home)
    opened: dict = {}
    try:
        code = _open(app, home, server, opened, started)
    except BaseException:
        server.close()
        _close(opened.get("window"), opened.get("services"), lock)
        raise
    server.close()
    if end_process:
        _close_fast(opened.get("window"), opened.get("services"), lock)
        _end_fast(code)
    _close(opened.get("window"), opened.get("services"), lock)
    return code


def _log_to_file(home) -> None:
    """The window's log, kept in the data directory (private, like the rest of it) for IT to read
    when something goes wrong: a few MB at most, rotated. A data directory that cannot take it
    costs the log, never the window."""
    import logging.handlers
    import os

    folder = home / "logs"
    path = folder / "confidant.log"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=2 << 20, backupCount=2, encoding="utf-8"
        )
    except OSError as exc:
        log.warning("no log file in %s: %s", folder, exc)
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    handler.set_name("confidant-log-file")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == handler.get_name()]:
        root.removeHandler(old)  # a second window in one process (tests) writes to its own
        old.close()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def _open(app, home, server, opened: dict, started: float) -> int:
    """Build and show the window, run the event loop; what was made goes into `opened`."""
    from PySide6.QtWidgets import QMessageBox

    from app.config import SettingsError
    from app.gui.main_window import MainWindow
    from app.services import Services

    try:
        services = Services(home)
    except SettingsError as exc:
        QMessageBox.warning(None, "Confidant", f"{exc}\n\nConfidant starts with the defaults.")
        from app.config import Settings

        services = Services(home, Settings())
    opened["services"] = services
    report = services.health()
    if report.library:
        # Damaged: say what, and offer the rebuild before anything reads the library.
        from app.core.store_health import LibraryDamaged
        from app.gui.repair_dialog import RepairDialog

        RepairDialog(services, report).exec()
        still = services.health().library
        if still:
            QMessageBox.warning(None, "Confidant", str(LibraryDamaged(still)))
            return 3
    window = opened["window"] = MainWindow(services)
    server.raise_requested.connect(window.bring_to_front)
    window.closing.connect(server.close)
    window.show()
    log.info("window visible after %.0f ms", (time.perf_counter() - started) * 1000)
    window.start_background_work()
    window.show_start_notes()
    app.aboutToQuit.connect(window.begin_shutdown)
    return app.exec()


def _close_fast(window, services, lock) -> None:
    """Free the library as soon as nothing uses it; leave loads that cannot be interrupted
    (they hold no part of it) to the end of the process."""
    free = True
    if window is not None:
        window.begin_shutdown()
        free = window.wait_library_free(LIBRARY_WAIT_S)
    if services is not None and free:
        try:
            library, history = services.library, services.history
            # The model's process holds nothing of the library: it ends beside it. Its lane
            # must be idle to touch it (a load cannot be interrupted; it ends with the process).
            if window is None or window.model_lane.join(250, quiet=True):
                threading.Thread(target=services.drop_engine, daemon=True).start()
            library.close()  # Chroma's process writes what it was sent, then ends
            history.close()
        except Exception:
            log.exception("closing the library failed")
    elif not free:
        log.warning("a job still used the library; leaving it to the end of the process")
    lock.release()
    log.info("library released")


def _close(window, services, lock) -> None:
    """In a process that goes on (tests): join every lane, then close everything."""
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
