"""The window's session as a person has it, on a real X server (Xvfb + openbox): the real
`python -m app` in a process of its own, driven with xdotool and a drag from another process.

- A drop from another program offering copy, move and link is answered as a copy (XDND's
  XdndStatus and XdndFinished), whatever action the source lists first; a source that allows
  no copy is refused.
- Ctrl+Q, then opening Confidant again within a second, opens the window (no refusal).
- Opening Confidant while it runs brings the running window to the front and exits 0.

Screenshots go to the shots folder (prefix 2x-). Skipped, saying why, where Xvfb, openbox,
xdotool or python-xlib is missing (.ci/run installs the programs; the `test` extra the library).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.gui.xserver import x_display

ROOT = Path(__file__).resolve().parents[2]
TOOLS = {name: shutil.which(name) for name in ("Xvfb", "openbox", "xdotool")}

pytestmark = [
    pytest.mark.skipif(
        not all(TOOLS.values()),
        reason="needs Xvfb, openbox and xdotool (apt-get install xvfb openbox xdotool)",
    ),
    pytest.mark.skipif(
        __import__("importlib").util.find_spec("Xlib") is None,
        reason="python-xlib is not installed (pip install -e '.[test]')",
    ),
]

WAIT_S = 180  # a cold start imports Qt and reads settings: generous for two busy cores


@pytest.fixture
def display(tmp_path):
    """A fresh X server on a free display number, with openbox managing its windows."""
    with x_display(tmp_path) as name:
        yield name


def _env(display: str, home: Path | None = None) -> dict:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    if home is not None:
        env["CONFIDANT_HOME"] = str(home)
        env["CONFIDANT_MACHINE_SETTINGS"] = str(home.parent / "no-machine-settings.toml")
    return env


def _xdotool(display: str, *args: str, check: bool = True) -> str:
    out = subprocess.run(
        [TOOLS["xdotool"], *args], env=_env(display), capture_output=True, text=True, timeout=30
    )
    if check and out.returncode != 0:
        raise AssertionError(f"xdotool {' '.join(args)} failed: {out.stderr}")
    return out.stdout.strip()


def _windows(display: str, pid: int, name: str = "^Confidant$") -> list[int]:
    """The visible top-level windows of process `pid` whose title matches `name`."""
    out = _xdotool(
        display,
        "search",
        "--all",
        "--onlyvisible",
        "--pid",
        str(pid),
        "--name",
        name,
        check=False,
    )
    return [int(w) for w in out.split()]


def _wait_window(display: str, proc: subprocess.Popen, timeout: float = WAIT_S) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _windows(display, proc.pid)
        if found:
            return found[0]
        assert proc.poll() is None, f"Confidant ended with code {proc.returncode}"
        time.sleep(0.1)
    raise AssertionError("the window did not appear")


def _launch(display: str, home: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=ROOT,
        env=_env(display, home),
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


@contextmanager
def _running(display: str, home: Path, log: Path):
    proc = _launch(display, home, log)
    try:
        yield proc, _wait_window(display, proc)
    finally:
        _end(proc)


def _end(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _screenshot(display: str, out: Path) -> None:
    env = _env(display)
    if shutil.which("import"):
        subprocess.run(["import", "-window", "root", str(out)], env=env, check=True, timeout=60)
    elif shutil.which("xwd") and shutil.which("convert"):
        raw = out.with_suffix(".xwd")
        subprocess.run(["xwd", "-root", "-silent", "-out", str(raw)], env=env, check=True)
        subprocess.run(["convert", str(raw), str(out)], check=True, timeout=60)


def _drag(display: str, window: int, paths: list[Path], offer: str, suggest: str) -> dict:
    """Drag `paths` onto `window` from another process (tests/gui/xdnd_source.py)."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.gui.xdnd_source", str(window)]
        + [str(p) for p in paths]
        + ["--offer", offer, "--suggest", suggest],
        cwd=ROOT,
        env=_env(display),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _asked_for(home: Path) -> set[str]:
    """Paths the window took: queued for reading, or already in the library."""
    asked: set[str] = set()
    queue = home / "ingest-queue.json"
    if queue.exists():
        with contextlib.suppress(ValueError):  # being replaced right now
            asked |= set(json.loads(queue.read_text()))
    db = home / "library.sqlite3"
    if db.exists():
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as con:
            asked |= {r[0] for r in con.execute("SELECT path FROM documents")}
    return asked


def _notes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    note = folder / "drop-note.txt"
    note.write_text(
        "Visitors sign in at the front desk and wear a badge at all times.\n"
        "The badge is returned to the desk when the visit ends.\n",
        encoding="utf-8",
    )
    return note


def test_a_drop_from_another_program_is_accepted_as_a_copy(display, tmp_path, shots):
    note = _notes(tmp_path / "docs")
    home = tmp_path / "home"
    with _running(display, home, tmp_path / "app.log") as (proc, window):
        # File managers list copy, move and link; Qt proposes the first one listed.
        for offer in ("move,copy,link", "copy,move,link", "link,copy,move"):
            result = _drag(display, window, [note], offer, suggest="move")
            assert result["accepted"], (offer, result)
            assert result["status"] == ["XdndActionCopy"] * 3, (offer, result)
            assert result["finished"] == "XdndActionCopy" and result["success"], (offer, result)
            assert "text/uri-list" in result["requested"]
        # A source that allows only a move (or only a link) is refused: never move a file away.
        for offer in ("move", "link"):
            result = _drag(display, window, [note], offer, suggest=offer)
            assert not result["accepted"], (offer, result)
            assert result["status"] == [None] * 3
        deadline = time.monotonic() + WAIT_S
        while str(note) not in _asked_for(home) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert str(note) in _asked_for(home), "the dropped file was not taken"
        time.sleep(1)
        _screenshot(display, shots / "2x-xdnd-drop-copied.png")
        assert proc.poll() is None
    assert note.read_text(encoding="utf-8").startswith("Visitors")  # the original is untouched


def test_quit_then_reopen_within_a_second_opens_the_window(display, tmp_path, shots):
    note = _notes(tmp_path / "docs")
    home = tmp_path / "home"
    log = tmp_path / "app.log"
    first = _launch(display, home, log)
    second = None
    try:
        window = _wait_window(display, first)
        # Give it a library in use: Chroma's process open, the models loaded.
        assert _drag(display, window, [note], "copy,move,link", "copy")["finished"]
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with sqlite3.connect(f"file:{home / 'library.sqlite3'}?mode=ro", uri=True) as con:
                row = con.execute(
                    "SELECT status FROM documents WHERE path=?", (str(note),)
                ).fetchone()
            if row and row[0] == "ready":
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the dropped file was not added")
        _screenshot(display, shots / "2x-before-quit.png")
        _xdotool(display, "windowactivate", "--sync", str(window))
        _xdotool(display, "key", "--clearmodifiers", "ctrl+q")
        quit_at = time.monotonic()
        time.sleep(0.5)
        second = _launch(display, home, log)  # half a second after Ctrl+Q
        new_window = _wait_window(display, second)
        opened_after = time.monotonic() - quit_at
        first.wait(timeout=60)
        gone_after = time.monotonic() - quit_at
        print(
            f"relaunch window after {opened_after:.1f} s; first process gone by {gone_after:.1f} s"
        )
        assert first.returncode == 0
        assert second.poll() is None, "the second launch ended instead of opening"
        assert new_window and not _windows(display, second.pid, "already open|busy")
        _screenshot(display, shots / "2x-reopened-after-quit.png")
    finally:
        _end(first)
        if second is not None:
            _end(second)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "Destroyed while thread" not in text, text[-3000:]


def test_opening_it_again_brings_the_running_window_to_the_front(display, tmp_path, shots):
    home = tmp_path / "home"
    with _running(display, home, tmp_path / "app.log") as (first, window):
        _xdotool(display, "windowminimize", "--sync", str(window))
        assert not _windows(display, first.pid)  # minimized: not viewable
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "app"],
            cwd=ROOT,
            env=_env(display, home),
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )
        print(f"second launch ended after {time.monotonic() - started:.1f} s")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "CONFIDANT_HOME" not in second.stdout + second.stderr
        deadline = time.monotonic() + 30
        while not _windows(display, first.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _windows(display, first.pid) == [window]  # shown again, the same window
        deadline = time.monotonic() + 10
        while _xdotool(display, "getactivewindow", check=False) != str(window):
            assert time.monotonic() < deadline, "the running window was not made active"
            time.sleep(0.1)
        _screenshot(display, shots / "2x-brought-to-front.png")
        assert first.poll() is None  # the first one runs on
