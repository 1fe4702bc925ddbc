"""Drops from other programs are copies, never moves; and the overlay that says where to drop.

A file manager offers copy, move and link, and Qt proposes the first action of the source's list
(XdndActionList on X11), which may be a move: answered as proposed, the file manager may move or
delete the user's original once we have it. Every widget that takes drops answers through
`as_copy` instead of `acceptProposedAction()`.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QDropEvent, QPainter, QPalette, QPen
from PySide6.QtWidgets import QWidget


def as_copy(event: QDropEvent) -> bool:
    """Accept `event` (drag enter, move or drop) as a copy; refuse it where the source does
    not allow a copy. Returns whether it was accepted."""
    if not event.possibleActions() & Qt.DropAction.CopyAction:
        event.ignore()
        return False
    event.setDropAction(Qt.DropAction.CopyAction)
    event.accept()
    return True


def keep_copy(event: QDropEvent, own: tuple = ()) -> None:
    """After a widget's own handler accepted `event` (a text drop into an editor): answer a
    drag from elsewhere as a copy. Drags from `own` (the editor moving its own text) keep
    their action."""
    if not event.isAccepted() or event.source() in own:
        return
    as_copy(event)


class DropOverlay(QWidget):
    """Shown over the window while files are dragged onto it: the window's own background,
    nearly opaque, so its words never mix with the messages under it."""

    TEXT = "Drop to add to your library"
    HINT = "The files stay where they are: Confidant reads them and keeps a search index."

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("dropOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.hide()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        base = QColor(pal.color(QPalette.ColorRole.Base))
        base.setAlpha(240)
        p.fillRect(self.rect(), base)
        accent = pal.color(QPalette.ColorRole.Highlight)
        p.setPen(QPen(accent, 3, Qt.PenStyle.DashLine))
        p.drawRoundedRect(self.rect().adjusted(12, 12, -12, -12), 16, 16)
        font = p.font()
        font.setPointSizeF(font.pointSizeF() * 1.8)
        font.setBold(True)
        p.setFont(font)
        p.setPen(pal.color(QPalette.ColorRole.Text))
        top = self.rect().adjusted(40, 0, -40, -self.height() // 2 + 10)
        p.drawText(top, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, self.TEXT)
        font.setPointSizeF(font.pointSizeF() / 1.8)
        font.setBold(False)
        p.setFont(font)
        p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
        below = self.rect().adjusted(40, self.height() // 2 + 22, -40, 0)
        p.drawText(
            below,
            Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop | Qt.TextFlag.TextWordWrap,
            self.HINT,
        )
