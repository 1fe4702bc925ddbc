"""The window's main states as a person meets them, on a real X server (Xvfb + openbox): files
dragged in from another program, a question typed and answered, a source opened from the
keyboard, a wrong model file chosen in Settings. Each state is screenshotted (prefix 4x-) for a
person to look at; the test checks what can be checked from outside: windows, their titles, what
the data directory holds.

Skipped, saying why, where Xvfb, openbox, xdotool or python-xlib is missing (see
test_x11_session.py, whose helpers it uses).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from tests.gui.test_x11_session import (
    WAIT_S,
    _drag,
    _running,
    _screenshot,
    _windows,
    _xdotool,
    pytestmark,  # noqa: F401 - the same skips apply here
)
from tests.gui.xserver import x_display
from tests.pdfmaker import make_pdf

BADGE = (
    "Visitors sign in at the front desk and wear a visitor badge at all times. "
    "The badge is returned to the desk when the visit ends."
)


@pytest.fixture
def display(tmp_path):
    with x_display(tmp_path) as name:
        yield name


def _rows(db: Path, sql: str, *args) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as con:
            return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # being created right now
        return []


def _until(what: str, check, timeout: float = WAIT_S, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        if proc is not None:
            assert proc.poll() is None, f"Confidant ended with code {proc.returncode}"
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _key(display: str, window: int, *keys: str) -> None:
    _xdotool(display, "windowactivate", "--sync", str(window))
    _xdotool(display, "key", "--clearmodifiers", "--delay", "80", *keys)


def test_the_main_states_by_mouse_drag_and_keyboard(display, tmp_path, shots):
    docs = tmp_path / "docs"
    docs.mkdir()
    manual = make_pdf(
        docs / "visitor-manual.pdf",
        [f"Section {i}. {BADGE} Rule {i} of the site." for i in range(1, 61)],
    )
    broken = docs / "minutes.docx"
    broken.write_bytes(b"These minutes were saved as plain text and renamed.\n" * 8)
    not_a_model = tmp_path / "quarterly-report.gguf"
    not_a_model.write_bytes(b"%PDF-1.4 a report, not a model" * 40)
    home = tmp_path / "home"
    library = home / "library.sqlite3"
    chats = home / "chats.sqlite3"

    with _running(display, home, tmp_path / "app.log") as (proc, window):
        time.sleep(1)
        _screenshot(display, shots / "4x-01-empty.png")

        result = _drag(display, window, [manual, broken], "copy,move,link", "copy")
        assert result["finished"] == "XdndActionCopy" and result["success"]
        time.sleep(1.5)
        _screenshot(display, shots / "4x-02-adding.png")
        _until(
            "the manual to be added and the renamed file to fail",
            lambda: (
                {r[0] for r in _rows(library, "SELECT status FROM documents")}
                == {"ready", "failed"}
            ),
            proc=proc,
        )
        time.sleep(1.5)  # the window's snapshot, and the failure note
        _screenshot(display, shots / "4x-03-library-with-a-failed-file.png")

        # Ask by keyboard: Ctrl+L to the question box, type, Enter.
        _key(display, window, "ctrl+l")
        _xdotool(display, "type", "--delay", "20", "What must visitors wear?")
        _key(display, window, "Return")
        time.sleep(1.0)
        _screenshot(display, shots / "4x-04-answering.png")
        _until(
            "the answer to be stored",
            lambda: (
                _rows(chats, "SELECT count(*) FROM messages WHERE role='assistant'")[0][0]
                if _rows(chats, "SELECT count(*) FROM messages")
                else 0
            ),
            proc=proc,
        )
        time.sleep(1.0)
        _screenshot(display, shots / "4x-05-answer.png")
        answer = _rows(chats, "SELECT text, sources FROM messages WHERE role='assistant'")[0]
        assert "visitor-manual.pdf" in answer[1], "the answer cites the manual"

        # Shift+Tab from the question box walks up the answer: regenerate, copy, its source;
        # Enter opens the source in the viewer.
        _key(display, window, "ctrl+l", "shift+Tab", "shift+Tab", "shift+Tab", "Return")
        viewer = _until(
            "the viewer", lambda: _windows(display, proc.pid, "visitor-manual.pdf"), proc=proc
        )
        time.sleep(2.0)  # the page rendered and the passage marked
        _screenshot(display, shots / "4x-06-viewer-from-the-keyboard.png")
        _key(display, viewer[0], "Escape")
        _until("the viewer to close", lambda: not _windows(display, proc.pid, "visitor-manual"))

        # Settings: a file that is not a model; Save says why and stays open.
        _key(display, window, "ctrl+comma")
        settings = _until("Settings", lambda: _windows(display, proc.pid, "^Settings$"))
        _key(display, settings[0], "ctrl+a")
        _xdotool(display, "type", "--delay", "5", str(not_a_model))
        _key(display, settings[0], "Return")
        time.sleep(1.0)
        assert _windows(display, proc.pid, "^Settings$"), "Save closed over a wrong model file"
        _screenshot(display, shots / "4x-07-settings-wrong-model.png")
        _key(display, settings[0], "Escape")
        _until("Settings to close", lambda: not _windows(display, proc.pid, "^Settings$"))
        assert proc.poll() is None
    log = (tmp_path / "app.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
