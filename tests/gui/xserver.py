"""A real X server for tests that use the window as a person does: Xvfb on a free display
number (it picks one and tells us through -displayfd), openbox managing its windows."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def x_display(logs: Path) -> Iterator[str]:
    """Yield the display name (":N") of a fresh Xvfb with openbox (when installed); both are
    ended afterwards. Their output goes to `logs`/xvfb.log."""
    read_end, write_end = os.pipe()
    log = (logs / "xvfb.log").open("wb")
    screen = ["-screen", "0", "1280x1024x24", "-nolisten", "tcp"]
    xvfb = subprocess.Popen(
        [shutil.which("Xvfb") or "Xvfb", "-displayfd", str(write_end), *screen],
        pass_fds=(write_end,),
        stdout=log,
        stderr=log,
    )
    os.close(write_end)
    number = b""
    deadline = time.monotonic() + 20
    while not number.endswith(b"\n") and time.monotonic() < deadline:
        if select.select([read_end], [], [], 0.5)[0]:
            chunk = os.read(read_end, 16)
            if not chunk:
                break
            number += chunk
    os.close(read_end)
    if not number.strip():
        xvfb.kill()
        xvfb.wait()
        log.close()
        pytest.fail("Xvfb did not start: " + (logs / "xvfb.log").read_text(errors="replace"))
    name = ":" + number.decode().strip()
    wm = None
    if shutil.which("openbox"):
        env = {**os.environ, "DISPLAY": name}
        wm = subprocess.Popen(["openbox", "--sm-disable"], env=env, stdout=log, stderr=log)
        time.sleep(0.5)
    try:
        yield name
    finally:
        for proc in (wm, xvfb):
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
