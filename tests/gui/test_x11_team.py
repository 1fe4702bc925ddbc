"""Team mode as a person meets it when the firm's servers are down, on a real X server (Xvfb +
openbox): the program starts, its window says which server cannot be reached and what to do, a
question typed meanwhile is answered with why there is no answer, and the local library is not
touched. Screenshotted (prefix 4x-) for a person to look at.

Skipped, saying why, where Xvfb, openbox, xdotool or python-xlib is missing.
"""

from __future__ import annotations

import socket
import sqlite3
import time

import pytest

from tests.gui.test_x11_session import (
    _running,
    _screenshot,
    _windows,
    _xdotool,
    pytestmark,  # noqa: F401 - the same skips apply here
)
from tests.gui.test_x11_states import _key, _until
from tests.gui.xserver import x_display


@pytest.fixture
def display(tmp_path):
    with x_display(tmp_path) as name:
        yield name


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_servers_down_at_start_the_window_opens_and_says_so(display, tmp_path, shots):
    home = tmp_path / "home"
    home.mkdir()
    library_port, model_port = _closed_port(), _closed_port()
    (home / "settings.toml").write_text(
        f'library_server = "http://127.0.0.1:{library_port}"\n'
        f'llm_server = "http://127.0.0.1:{model_port}/v1"\n',
        encoding="utf-8",
    )
    local = home / "library.sqlite3"
    local.write_bytes(b"a local library, left as it was")
    chats = home / "chats.sqlite3"
    log = tmp_path / "app.log"
    with _running(display, home, log) as (proc, window):
        time.sleep(3.0)  # the library lane tries the server and the note comes up
        _screenshot(display, shots / "4x-08-team-server-down.png")
        assert not _windows(display, proc.pid, "^(Error|Confidant - error)"), "a dialog, not a note"

        _key(display, window, "ctrl+l")
        _xdotool(display, "type", "--delay", "20", "Who signs the visitor book?")
        _key(display, window, "Return")

        def answer():
            if not chats.exists():
                return None
            with sqlite3.connect(f"file:{chats}?mode=ro", uri=True, timeout=10) as con:
                try:
                    rows = con.execute(
                        "SELECT text FROM messages WHERE role='assistant'"
                    ).fetchall()
                except sqlite3.OperationalError:
                    return None
            return rows[0][0] if rows else None

        text = _until("the answer saying why there is none", answer, proc=proc)
        time.sleep(1.0)
        _screenshot(display, shots / "4x-09-team-question-while-down.png")
        assert "cannot be reached" in text and f"127.0.0.1:{library_port}" in text
        assert "nothing answers at that address" in text and "Error" not in text  # no jargon
        assert proc.poll() is None  # still running
    assert local.read_bytes() == b"a local library, left as it was"
    assert not (home / "library").exists()
    out = log.read_text(errors="replace")
    assert "Traceback" not in out, out[-3000:]
