"""Where icons and style sheets live, and icons drawn in the palette's own text colour.

In a source checkout the files are in <repo>/resources; a frozen app (PyInstaller) unpacks them
under sys._MEIPASS/resources; CONFIDANT_RESOURCES overrides both (packagers, tests).
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPixmap
from PySide6.QtSvg import QSvgRenderer

ICON_SIZES = (16, 20, 24, 32, 40, 48, 64)


def resource_root() -> Path:
    if env := os.environ.get("CONFIDANT_RESOURCES"):
        return Path(env)
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    return resource_root().joinpath(*parts)


def icon(name: str, color: QColor | str | None = None) -> QIcon:
    """An SVG icon from resources/icons, its `currentColor` painted in `color` (default: the
    palette's text colour, so it reads in light and dark mode). Rendered crisp at each size."""
    if color is None:
        app = QGuiApplication.instance()
        color = app.palette().windowText().color() if app else QColor("black")
    return _icon(name, QColor(color).name(QColor.NameFormat.HexArgb))


@cache
def _icon(name: str, color: str) -> QIcon:
    path = resource_path("icons", f"{name}.svg")
    try:
        svg = path.read_text(encoding="utf-8")
    except OSError:
        return QIcon()
    qcolor = QColor(color)
    svg = svg.replace("currentColor", qcolor.name())
    if qcolor.alpha() < 255:
        svg = svg.replace("<svg ", f'<svg opacity="{qcolor.alphaF():.2f}" ', 1)
    renderer = QSvgRenderer(QByteArray(svg.encode("utf-8")))
    result = QIcon()
    for size in ICON_SIZES:
        pixmap = QPixmap(QSize(size, size))
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        result.addPixmap(pixmap)
    return result


def style_sheet() -> str:
    try:
        return resource_path("style", "app.qss").read_text(encoding="utf-8")
    except OSError:
        return ""
