"""The window by keyboard: Tab goes where people read, Enter opens a source, every control has
a name a screen reader can say."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QAbstractSpinBox, QApplication, QWidget

from app.gui.chat_view import SourceButton

SOURCE = {"n": 1, "path": "/docs/lease.pdf", "page": 4, "text": "The lease ends in 2027."}


def _window_with_an_answer(make_window, home):
    window = make_window(home)
    window.chat.add_user("When does the lease end?")
    window.chat.add_answer("It ends in 2027 [1].", [SOURCE], {"model": "m"})
    QApplication.processEvents()
    return window


def _tab(qtbot, window, back: bool = False) -> QWidget:
    widget = QApplication.focusWidget()
    mods = Qt.KeyboardModifier.ShiftModifier if back else Qt.KeyboardModifier.NoModifier
    qtbot.keyClick(widget, Qt.Key.Key_Backtab if back else Qt.Key.Key_Tab, mods)
    return QApplication.focusWidget()


def test_tab_from_the_question_box_reaches_the_sidebar_before_the_messages(
    qtbot, make_window, home
):
    window = _window_with_an_answer(make_window, home)
    window.activateWindow()
    window.chat.input.setFocus()
    qtbot.waitUntil(lambda: window.chat.input.hasFocus(), timeout=2000)
    assert _tab(qtbot, window) is window.chat.send_button
    assert _tab(qtbot, window) is window.conversations.new_button
    assert _tab(qtbot, window) is window.conversations.search
    window.chat.input.setFocus()
    # Shift+Tab walks back up the conversation: the last answer's buttons, then its source.
    answer = window.chat.bubbles[-1]
    assert _tab(qtbot, window, back=True) is answer.regen_button
    assert _tab(qtbot, window, back=True) is answer.copy_button
    source = _tab(qtbot, window, back=True)
    assert isinstance(source, SourceButton) and source.source["page"] == 4


def test_enter_on_a_focused_source_opens_it(qtbot, make_window, home):
    window = _window_with_an_answer(make_window, home)
    opened = []
    window.chat.source_clicked.connect(opened.append)
    button = window.chat.bubbles[-1].findChildren(SourceButton)[0]
    button.setFocus()
    qtbot.keyClick(button, Qt.Key.Key_Return)
    assert opened and opened[0]["page"] == 4
    assert button.accessibleName() == "Source 1: lease.pdf · page 4"


def test_every_control_of_the_window_has_a_name(qtbot, make_window, home):
    window = _window_with_an_answer(make_window, home)
    unnamed = []
    for w in window.findChildren(QWidget):
        if not w.isVisible() or not (w.focusPolicy() & Qt.FocusPolicy.TabFocus):
            continue
        if isinstance(w.parent(), QAbstractSpinBox):
            continue
        iface = QAccessible.queryAccessibleInterface(w)
        if iface is None or not iface.text(QAccessible.Text.Name).strip():
            unnamed.append(f"{type(w).__name__} {w.objectName()}")
    assert not unnamed, unnamed
