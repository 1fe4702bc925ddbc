"""Why a file was not added can be read whole, by keyboard too, and its summary stays; the last
answer of a reopened conversation offers Regenerate as it does right after answering.

The real window over a tmp data directory, the real readers, embedder and tiny LLM.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from tests.gui.helpers import LONG, drop_files, shot, status_of, wait_answer, wait_ingested

pytestmark = pytest.mark.slow

HOLIDAY = (
    "# Holiday policy\n\nEvery employee has 27 days of paid holiday per year. "
    "Requests go to the team lead two weeks ahead.\n"
)


def _bad_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    contract = folder / "contract.docx"
    contract.write_bytes(b"This is plain text that someone renamed to .docx.\n" * 4)
    scan = folder / "scan.pdf"
    scan.write_bytes(b"<html><body>404 Not Found</body></html>\n")
    notes = folder / "notes.md"
    notes.write_text(HOLIDAY, encoding="utf-8")
    return contract, scan, notes


def _key(widget, key) -> None:
    QTest.keyClick(widget, key)
    QApplication.processEvents()


def _reasons(window) -> dict[str, str]:
    """path -> the whole reason the library stores for each document that has one."""
    snapshot = window.ingest_lane.snapshot()
    return {d.path: d.error for d in snapshot.documents if d.error}


def _ingest_with_failures(qtbot, window, tmp_path):
    contract, scan, notes = _bad_files(tmp_path / "docs")
    drop_files(window, [contract, scan, notes])
    wait_ingested(qtbot, window, [notes])
    qtbot.waitUntil(
        lambda: status_of(window, contract) == "failed" and status_of(window, scan) == "failed",
        timeout=LONG,
    )
    return contract, scan, notes


def test_keyboard_reaches_the_whole_reason_of_a_failed_file(
    qtbot, make_window, home, tmp_path, shots
):
    window = make_window(home)
    window.split.setSizes([280, 900])  # a sidebar as narrow as a user leaves it
    contract, scan, notes = _ingest_with_failures(qtbot, window, tmp_path)
    library = window.library
    reasons = _reasons(window)
    assert set(reasons) == {str(contract), str(scan)}
    # The row is too narrow for the sentence: it is cut there, so the detail area must show it.
    row_room = library.list.viewport().width()
    fm = library.list.fontMetrics()
    assert fm.horizontalAdvance(reasons[str(contract)]) > 2 * row_room
    assert library.reason.isHidden()  # nothing selected yet

    # Tab into the list from the conversations (the sidebar's order), arrows select rows.
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5000)
    window.conversations.list.setFocus()
    # In reading order: the note above the list (Show, Dismiss), then the list.
    for expected in (library.failure_show, library.failure_dismiss, library.list):
        _key(QApplication.focusWidget(), Qt.Key.Key_Tab)
        assert QApplication.focusWidget() is expected
    # Tab makes the first row current (Qt's way, nothing selected yet); arrows select.
    _key(library.list, Qt.Key.Key_Down)  # notes.md: added, nothing to explain
    assert library.selected_paths() == [str(notes)]
    assert library.reason.isHidden()
    _key(library.list, Qt.Key.Key_Up)  # contract.docx
    assert library.selected_paths() == [str(contract)]
    assert library.reason.isVisible()
    assert library.reason.text() == f"Failed: {reasons[str(contract)]}"
    assert "save it as .docx, and add it again." in library.reason.text()  # the cut-off end
    # Wrapped and given the height it needs: no line of it is clipped.
    assert library.reason.wordWrap()
    assert library.reason.height() >= library.reason.heightForWidth(library.reason.width())
    flags = library.reason.textInteractionFlags()
    assert flags & Qt.TextInteractionFlag.TextSelectableByKeyboard
    assert flags & Qt.TextInteractionFlag.TextSelectableByMouse
    shot(library, shots, "3x-failed-detail")

    _key(library.list, Qt.Key.Key_Down)
    _key(library.list, Qt.Key.Key_Down)  # scan.pdf: its own reason
    assert library.selected_paths() == [str(scan)]
    assert library.reason.isVisible()
    assert library.reason.text() == f"Failed: {reasons[str(scan)]}"

    # A snapshot redraws the list: the selection, and so the reason, stay; arrows go on.
    window.ingest_lane.refresh()
    qtbot.waitUntil(lambda: not window.ingest_lane.busy(), timeout=LONG)
    QApplication.processEvents()
    assert library.selected_paths() == [str(scan)]
    assert library.reason.text() == f"Failed: {reasons[str(scan)]}"
    _key(library.list, Qt.Key.Key_Up)
    assert library.selected_paths() == [str(notes)]

    # The reason itself is a stop of Tab onwards from the list (to select and copy it by keys).
    _key(library.list, Qt.Key.Key_Up)
    assert library.selected_paths() == [str(contract)]
    assert library.reason.isVisible()
    for _ in range(8):
        _key(QApplication.focusWidget(), Qt.Key.Key_Tab)
        if QApplication.focusWidget() is library.reason:
            break
    assert QApplication.focusWidget() is library.reason
    assert library.selected_paths() == [str(contract)]  # leaving the list kept the selection
    assert library.reason.isVisible()


def test_the_failure_summary_stays_until_dismissed(qtbot, make_window, home, tmp_path):
    window = make_window(home)
    contract, scan, _notes = _ingest_with_failures(tmp_path=tmp_path, qtbot=qtbot, window=window)
    library = window.library
    qtbot.waitUntil(lambda: not window.ingest_lane.busy("ingest"), timeout=LONG)
    QApplication.processEvents()
    assert library.failure_note.isVisible()
    assert library.failure_text() == "2 files could not be added — see the list."

    # Fifteen seconds on, without waiting them: what a timed message would have done by then
    # is done now (the status bar's message times out; every running timer of the window
    # fires), and the summary is still there.
    window.statusBar().clearMessage()
    for timer in window.findChildren(QTimer):
        if timer.isActive() and timer.interval() <= 15_000:
            timer.timeout.emit()
    QApplication.processEvents()
    assert library.failure_note.isVisible()
    assert library.failure_text() == "2 files could not be added — see the list."

    # "Show" selects the first of them, so its reason reads under the list.
    qtbot.mouseClick(library.failure_show, Qt.MouseButton.LeftButton)
    assert library.selected_paths() == [str(contract)]
    assert library.reason.isVisible() and "contract.docx" in library.reason.text()

    # Dismissed, it is gone, and a refreshed list does not bring it back.
    qtbot.mouseClick(library.failure_dismiss, Qt.MouseButton.LeftButton)
    assert library.failure_note.isHidden()
    window.ingest_lane.refresh()
    qtbot.waitUntil(lambda: not window.ingest_lane.busy(), timeout=LONG)
    QApplication.processEvents()
    assert library.failure_note.isHidden()
    assert status_of(window, scan) == "failed"  # the rows keep saying so


def _offered(window):
    """The bubble on which Regenerate is on screen (None if none), after painting."""
    QApplication.processEvents()
    shown = [b for b in window.chat.bubbles if b.role == "assistant" and b.regen_button.isVisible()]
    assert len(shown) <= 1
    return shown[0] if shown else None


def test_regenerate_stays_on_the_last_answer_after_switching_chats_and_relaunching(
    qtbot, make_window, home, tmp_path
):
    notes = tmp_path / "notes.md"
    notes.write_text(HOLIDAY, encoding="utf-8")
    window = make_window(home)
    drop_files(window, [notes])
    wait_ingested(qtbot, window, [notes])
    window.ask("How many days of paid holiday do employees get?")
    wait_answer(qtbot, window)
    conv = window.conversation
    assert _offered(window) is window.chat.bubbles[-1]  # as right after answering

    # Another chat, from history: its own last answer offers it; an answer followed by a
    # failed one (the conversation ends in an error) does not.
    history = window.services.history
    other = history.create("Older chat").id
    history.add(other, "user", "What is in the report?")
    history.add(other, "assistant", "The report covers the office move.", [], {"model": "m"})
    ended_badly = history.create("Ended in an error").id
    history.add(ended_badly, "user", "First question?")
    history.add(ended_badly, "assistant", "An answer.", [], {"model": "m"})
    history.add(ended_badly, "user", "Second question?")
    history.add(ended_badly, "assistant", "The answer stopped with an error.", [], {"error": True})
    window.chats.refresh_list()

    def select(conv_id):
        for i in range(window.conversations.list.count()):
            item = window.conversations.list.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == conv_id:
                window.conversations.list.setCurrentItem(item)  # as a click or arrow key does
                break
        assert window.conversation == conv_id

    select(other)
    assert [b.role for b in window.chat.bubbles] == ["user", "assistant"]
    assert _offered(window) is window.chat.bubbles[-1]
    select(ended_badly)
    assert _offered(window) is None
    select(conv)
    assert [b.role for b in window.chat.bubbles] == ["user", "assistant"]
    assert _offered(window) is window.chat.bubbles[-1]
    window.close()

    again = make_window(home)  # a relaunch over the same data directory
    assert again.conversation == conv
    bubble = _offered(again)
    assert bubble is again.chat.bubbles[-1]
    qtbot.mouseClick(bubble.regen_button, Qt.MouseButton.LeftButton)
    assert again.chats.busy  # the button does regenerate
    wait_answer(qtbot, again)
    assert [m.role for m in again.services.history.messages(conv)] == ["user", "assistant"]
    assert _offered(again) is again.chat.bubbles[-1]
