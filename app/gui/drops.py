"""Drops from other programs are copies, never moves.

A file manager offers copy, move and link, and Qt proposes the first action of the source's list
(XdndActionList on X11), which may be a move: answered as proposed, the file manager may move or
delete the user's original once we have it. Every widget that takes drops answers through
`as_copy` instead of `acceptProposedAction()`.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QDropEvent


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
