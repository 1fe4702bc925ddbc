"""The first citation after launch, on a real X server (Xvfb + openbox), checked on a screenshot.

A fresh window (subprocess, platform xcb) opens a citation deep in a 600-page PDF first thing;
the screenshot of the whole screen must show the cited page's print under the highlight where
the viewer says the passage is. Every page but the cited one is blank, so print there can only
come from the right page. Skipped, saying why, where Xvfb is not installed (.ci/run installs it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage

from tests.gui.citation_docs import PASSAGE_LINES, WANTED, big_pdf, citation
from tests.gui.xserver import x_display

ROOT = Path(__file__).resolve().parents[2]
XVFB = shutil.which("Xvfb")

pytestmark = pytest.mark.skipif(
    XVFB is None, reason="Xvfb is not installed (apt-get install xvfb openbox imagemagick)"
)


@pytest.fixture
def display(tmp_path):
    """A fresh X server on a free display number, with openbox managing its windows."""
    with x_display(tmp_path) as name:
        yield name


def _screenshot(display: str, out: Path) -> None:
    env = {**os.environ, "DISPLAY": display}
    if shutil.which("import"):
        subprocess.run(["import", "-window", "root", str(out)], env=env, check=True, timeout=60)
        return
    if shutil.which("xwd") and shutil.which("convert"):
        raw = out.with_suffix(".xwd")
        subprocess.run(["xwd", "-root", "-silent", "-out", str(raw)], env=env, check=True)
        subprocess.run(["convert", str(raw), str(out)], check=True, timeout=60)
        return
    pytest.skip("no screen grabber (ImageMagick's import, or xwd and convert)")


def _count(image: QImage, rect: list[float], test) -> int:
    r = QRectF(*rect).toRect().intersected(image.rect())
    return sum(
        1
        for y in range(r.top(), r.bottom())
        for x in range(r.left(), r.right(), 2)
        if test(image.pixelColor(x, y))
    )


def test_first_citation_after_launch_on_x11(tmp_path, display, shots):
    pdf = big_pdf(tmp_path / "docs", blank_fillers=True)
    source = citation(pdf)
    env = {
        **os.environ,
        "DISPLAY": display,
        "QT_QPA_PLATFORM": "xcb",
        "CONFIDANT_HOME": str(tmp_path / "home"),
        "CONFIDANT_MACHINE_SETTINGS": str(tmp_path / "no-machine-settings.toml"),
    }
    probe = subprocess.Popen(
        [sys.executable, "-m", "tests.gui.x11_viewer_probe", json.dumps(source)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "probe.log").open("wb"),
        text=True,
    )
    try:
        line = probe.stdout.readline()
        assert line, "the probe died: " + (tmp_path / "probe.log").read_text(errors="replace")
        report = json.loads(line)
        shot = tmp_path / "x11-first-citation.png"
        _screenshot(display, shot)
    finally:
        if probe.poll() is None:
            probe.stdin.write("quit\n")
            probe.stdin.flush()
        try:
            probe.wait(timeout=30)
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.wait()
    shutil.copy(shot, shots / "11-x11-first-citation.png")

    assert report["platform"] == "xcb"
    assert report["settled"], report
    assert report["current_page"] == WANTED - 1, report
    assert f"page {WANTED}" in report["title"]
    assert report["label"].startswith("Highlighted")
    assert len(report["marks"]) == PASSAGE_LINES
    image = QImage(str(shot))
    assert not image.isNull()
    viewport = QRectF(*report["viewport"])
    for rect in report["marks"]:
        assert viewport.contains(QRectF(*rect)), (rect, report["viewport"])
        # On screen: the highlight's colour, and print under it (only the cited page has any).
        assert _count(image, rect, lambda c: c.red() > 200 and c.blue() < 200) > 20, rect
        assert _count(image, rect, lambda c: c.lightness() < 90) > 5, rect
    for rect in report["support"]:
        assert _count(image, rect, lambda c: c.red() > 200 and c.blue() < 120) > 20, rect
