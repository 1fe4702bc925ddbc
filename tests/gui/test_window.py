"""The real window, the real tiny models: drop, ask, cite, stop, fail, restart, settings."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox
from pytestqt.exceptions import TimeoutError

from app.config import load_settings
from app.core.events import IngestFinished, TextPiece
from app.gui.chat_view import SourceButton
from tests.gui.helpers import LONG, drop_files, shot, status_of, wait_answer, wait_ingested
from tests.pdfmaker import make_pdf

pytestmark = pytest.mark.slow

FACT_PAGE_2 = (
    "Zephyr project budget\n"
    "The Zephyr project budget is 48,000 euros for the year.\n"
    "The budget was approved by Marta Quillfeather in March."
)


def _docs(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    pdf = make_pdf(
        folder / "zephyr-report.pdf",
        [
            "Annual report\nThis report covers the office move and the new printers.",
            FACT_PAGE_2,
            "Appendix\nThe cafeteria opens at eight and closes at four.",
        ],
    )
    notes = folder / "holiday-policy.md"
    notes.write_text(
        "# Holiday policy\n\nEvery employee has 27 days of paid holiday per year. "
        "Requests go to the team lead two weeks ahead.\n",
        encoding="utf-8",
    )
    return pdf, notes


def _wait_painted(qtbot, widget) -> None:
    """Wait (briefly) until the PDF page is rendered, for a meaningful screenshot."""

    def has_text() -> bool:
        image = widget.grab().toImage()
        return any(
            image.pixelColor(x, y).lightness() < 100
            for y in range(0, image.height(), 4)
            for x in range(0, image.width(), 4)
        )

    # Rendering is asynchronous; the screenshot is a nicety, not the test.
    with contextlib.suppress(TimeoutError):
        qtbot.waitUntil(has_text, timeout=5000)


def test_window_is_visible_before_any_model_loads(tmp_path):
    """Building and showing the window imports neither llama.cpp nor torch nor chromadb."""
    script = (
        "import os, sys, time\n"
        "t = time.perf_counter()\n"
        "from app.gui.main import create_application\n"
        "app = create_application([])\n"
        "from app.config import data_dir\n"
        "from app.services import Services\n"
        "from app.gui.main_window import MainWindow\n"
        "services = Services(data_dir())\n"
        "w = MainWindow(services)\n"
        "w.show(); app.processEvents()\n"
        "ms = (time.perf_counter() - t) * 1000\n"
        "heavy = [m for m in ('llama_cpp', 'torch', 'chromadb', 'sentence_transformers') "
        "if m in sys.modules]\n"
        "print('VISIBLE_MS', round(ms), 'HEAVY', ','.join(heavy) or '-')\n"
        "w.shutdown(); services.close()\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CONFIDANT_HOME=str(tmp_path / "home"))
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("VISIBLE_MS"))
    _, ms, _, heavy = line.split()
    print(f"time to visible window: {ms} ms")
    assert heavy == "-", f"showing the window loaded {heavy}"
    assert int(ms) < 10_000


def test_empty_state_invites_drops(qtbot, make_window, home, shots):
    window = make_window(home)
    assert window.chat.stack.currentWidget() is window.chat.empty
    assert "Drop files" in window.chat.empty.title.text()
    assert window.library.stack.currentWidget() is window.library.placeholder
    shot(window, shots, "01-empty")
    body = window.chat.empty.body
    for size, documents in (((1100, 760), 0), ((1100, 760), 12), ((560, 480), 12)):
        window.resize(*size)
        window.chat.empty.set_library(documents)
        qtbot.waitUntil(lambda: body.height() >= body.heightForWidth(body.width()))
        assert body.width() > 300  # wrapped into a readable column, every line shown


def test_drop_ask_cite_and_view(qtbot, make_window, home, tmp_path, shots):
    pdf, notes = _docs(tmp_path / "docs")
    window = make_window(home)
    drop_files(window, [pdf, notes])
    assert window.library.progress_box.isVisible()
    wait_ingested(qtbot, window, [pdf, notes])
    assert not window.library.progress_box.isVisible()
    assert "2 documents" in window.library_label.text()
    assert window.chat.stack.currentWidget() is window.chat.empty  # now: "ask about…"
    shot(window, shots, "02-library-ready")

    pieces = []
    window.model_lane.event.connect(
        lambda job, ev: pieces.append(ev) if isinstance(ev, TextPiece) else None
    )
    window.chat.input.setPlainText("What is the Zephyr project budget?")
    qtbot.keyClick(window.chat.input, Qt.Key.Key_Return)
    assert window.chats.busy and window.chat.busy
    wait_answer(qtbot, window)
    answer = [b for b in window.chat.bubbles if b.role == "assistant"][-1]
    assert answer.text.strip()
    assert answer.sources, "the answer lists its sources"
    assert pieces and window.chat.flushes >= 1  # streamed (coalescing: test_chat_controller)
    assert "·" in window.model_label.text()  # "SmolLM2… · CPU"
    stored = window.services.history.messages(window.conversation)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].sources
    shot(window, shots, "03-answer")

    buttons = [
        b
        for b in answer.findChildren(SourceButton)
        if b.source["path"] == str(pdf) and b.source["page"] == 2
    ]
    assert buttons, [b.source for b in answer.findChildren(SourceButton)]
    qtbot.mouseClick(buttons[0], Qt.MouseButton.LeftButton)
    viewer = window.viewer
    assert viewer is not None and viewer.isVisible()
    qtbot.waitUntil(lambda: viewer.current_page == 1, timeout=10_000)
    qtbot.waitUntil(lambda: viewer.search_hits() > 0, timeout=10_000)
    _wait_painted(qtbot, viewer.pdf_view.viewport())
    viewer.grab().save(str(shots / "04-viewer-pdf.png"))

    # A non-PDF source opens as text, scrolled to the passage, highlighted.
    from app.gui.chat_controller import source_dict

    hit = next(
        h
        for h in window.services.retriever().search("paid holiday per year", k=3)
        if h.path == str(notes)
    )
    window.open_source(source_dict(type("S", (), {"n": 2, "hit": hit})()))
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.text, timeout=10_000)
    assert viewer.text.extraSelections()
    assert "27 days of paid holiday" in viewer.highlighted_text
    viewer.grab().save(str(shots / "05-viewer-text.png"))


def test_stop_ends_generation_quickly(qtbot, make_window, home, shots):
    window = make_window(home, max_answer_tokens=2000, only_from_documents=False)
    window.ask("Write a very long story about a lighthouse keeper and the sea.")
    qtbot.waitUntil(
        lambda: bool(
            window.chat.current is not None and (window.chat.current.text or window.chat._pending)
        ),
        timeout=LONG,
    )
    stopped_at = time.perf_counter()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    wait_answer(qtbot, window)
    took = time.perf_counter() - stopped_at
    assert took < 3.0, f"Stop took {took:.1f} s"
    stored = window.services.history.messages(window.conversation)
    assert stored[-1].role == "assistant"
    assert stored[-1].stats.get("stop_reason") == "cancelled"
    assert stored[-1].stats.get("completion_tokens", 0) < 400
    assert not window.chat.busy
    shot(window, shots, "06-stopped")


def test_bad_file_shows_its_reason(qtbot, make_window, home, tmp_path, shots):
    bad = tmp_path / "scan.pdf"
    bad.write_bytes(b"%PDF-1.4\n" + os.urandom(2048))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    window = make_window(home)
    drop_files(window, [bad, empty])
    qtbot.waitUntil(
        lambda: (
            status_of(window, bad) == "failed"
            and status_of(window, empty) in ("skipped", "failed")
            and not window.ingest_lane.busy()
        ),
        timeout=LONG,
    )
    _status, detail = window.library.documents()[str(bad)]
    assert detail.startswith("Failed: ") and len(detail) > len("Failed: ") + 10
    assert "Traceback" not in detail
    item = window.library.item_for(str(bad))
    assert detail.split(": ", 1)[1] in item.toolTip()
    window.ask("Is anything in there?")  # the app stays usable with nothing readable
    wait_answer(qtbot, window)
    shot(window, shots, "07-bad-file")


def test_remove_runs_on_the_ingest_lane(qtbot, make_window, home, tmp_path, monkeypatch):
    _pdf, notes = _docs(tmp_path / "docs")
    window = make_window(home)
    drop_files(window, [notes])
    wait_ingested(qtbot, window, [notes])
    monkeypatch.setattr(
        QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes)
    )
    calls = []
    real_remove = window.services.library.remove

    def remove(path):
        from PySide6.QtCore import QThread

        calls.append(QThread.currentThread().objectName())
        return real_remove(path)

    monkeypatch.setattr(window.services.library, "remove", remove)
    window.library.list.item(0).setSelected(True)
    window.library.remove_action.trigger()
    qtbot.waitUntil(lambda: str(notes) not in window.library.documents(), timeout=LONG)
    assert calls == ["confidant-ingest"]
    assert window.chat.empty.title.text().startswith("Drop files")


def test_conversation_survives_restart(qtbot, make_window, home, tmp_path, shots):
    _pdf, notes = _docs(tmp_path / "docs")
    window = make_window(home)
    drop_files(window, [notes])
    wait_ingested(qtbot, window, [notes])
    window.ask("How many days of paid holiday do employees get?")
    wait_answer(qtbot, window)
    conv = window.conversation
    window.resize(760, 560)
    window.close()

    again = make_window(home)
    assert again.conversation == conv  # the last conversation is reopened
    assert any("holiday" in t.lower() for t in again.conversations.titles())
    roles = [b.role for b in again.chat.bubbles]
    assert roles == ["user", "assistant"]
    assert again.chat.bubbles[1].sources
    assert (again.width(), again.height()) == (760, 560)
    # The documents come from the ingest lane (the GUI thread never reads the library).
    qtbot.waitUntil(lambda: status_of(again, notes) == "ready", timeout=5000)

    again.regenerate()  # works on a restored conversation too
    wait_answer(qtbot, again)
    assert [m.role for m in again.services.history.messages(conv)] == ["user", "assistant"]
    shot(again, shots, "08-restored")

    monkeypatch_yes = QMessageBox.question
    try:
        QMessageBox.question = staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes)
        again.delete_conversation(conv)
    finally:
        QMessageBox.question = monkeypatch_yes
    assert again.conversation is None and not again.chat.bubbles
    assert again.conversations.titles() == []


def _hold_ingest_lane(window):
    """A job that keeps the ingest lane busy until the window cancels it (closing or Stop), so
    what is dropped next is still waiting when that happens."""

    def work(job):
        while not job.cancel.cancelled:
            time.sleep(0.01)
        return
        yield

    return window.ingest_lane.submit("ingest", work)


def test_closing_mid_ingest_resumes_at_the_next_start(qtbot, make_window, home, tmp_path, shots):
    pdf, notes = _docs(tmp_path / "docs")
    window = make_window(home)
    _hold_ingest_lane(window)
    drop_files(window, [pdf, notes])
    assert status_of(window, pdf) == "queued"
    window.close()  # the dropped files were never read
    assert window.services.library.documents() == []

    again = make_window(home)
    again.start_background_work()  # as at launch
    qtbot.waitUntil(lambda: "left unfinished" in again.statusBar().currentMessage(), timeout=LONG)
    assert again.statusBar().currentMessage().startswith("Picking up 2 items")
    wait_ingested(qtbot, again, [pdf, notes])
    assert again.services.ingestor().pending() == []
    shot(again, shots, "12-resumed")


def test_stop_forgets_what_was_waiting(qtbot, make_window, home, tmp_path):
    _pdf, notes = _docs(tmp_path / "docs")
    window = make_window(home)
    _hold_ingest_lane(window)
    drop_files(window, [notes])
    assert window.services.ingestor().pending() == [str(notes)]
    window.cancel_ingest()  # the Stop button
    qtbot.waitUntil(lambda: not window.ingest_lane.busy("ingest"), timeout=LONG)
    assert window.services.ingestor().pending() == []
    window.close()

    again = make_window(home)
    again.start_background_work()
    qtbot.waitUntil(lambda: not again.ingest_lane.busy(), timeout=LONG)
    assert status_of(again, notes) == ""  # not resumed: the user stopped it


def test_a_drop_refused_for_another_embedding_model_is_not_resumed(
    qtbot, make_window, home, tmp_path, monkeypatch
):
    pdf, notes = _docs(tmp_path / "docs")
    window = make_window(home)
    drop_files(window, [notes])
    wait_ingested(qtbot, window, [notes])
    window.services.library._db.execute("UPDATE meta SET value='other@1' WHERE key='embedder'")
    offered = []

    def cancel(*args, **kwargs):
        offered.append(args[2])
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", staticmethod(cancel))
    drop_files(window, [pdf])
    qtbot.waitUntil(lambda: bool(offered), timeout=LONG)
    assert "Vectors of two models cannot be mixed" in offered[0]
    assert window.services.ingestor().pending() == []
    assert status_of(window, pdf) != "ready"


def test_settings_round_trip(qtbot, make_window, home, tmp_path, monkeypatch, shots):
    from app.gui.settings_dialog import SettingsDialog

    window = make_window(home)
    dialog = SettingsDialog(window.services.settings, window, gpu=True)
    qtbot.addWidget(dialog)
    assert dialog.gpu_spin.text() == "Auto (as many as fit)"
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a model at all")
    dialog.model_edit.setText(str(bad))
    dialog.accept()
    assert dialog.result() != SettingsDialog.DialogCode.Accepted
    assert not dialog.model_error.isHidden() and dialog.model_error.text()
    dialog.show()
    dialog.grab().save(str(shots / "09-settings-bad-model.png"))

    dialog.model_edit.setText("")
    dialog.gpu_spin.setValue(0)
    dialog.ctx_spin.setValue(2048)
    dialog.sources_spin.setValue(3)
    dialog.strict_check.setChecked(False)
    dialog.accept()
    assert dialog.result() == SettingsDialog.DialogCode.Accepted
    assert window.apply_settings(dialog.result_settings())
    saved = load_settings(home)
    assert (saved.gpu_layers, saved.context_size, saved.sources, saved.only_from_documents) == (
        0,
        2048,
        3,
        False,
    )
    assert window.services.settings.context_size == 2048
    qtbot.waitUntil(lambda: not window.model_lane.busy(), timeout=LONG)

    again = SettingsDialog(window.services.settings, window)
    qtbot.addWidget(again)
    assert (
        again.gpu_spin.value(),
        again.ctx_spin.value(),
        again.sources_spin.value(),
        again.strict_check.isChecked(),
    ) == (0, 2048, 3, False)


def test_changing_the_embedder_asks_before_reindexing(
    qtbot, make_window, home, tmp_path, monkeypatch
):
    _pdf, notes = _docs(tmp_path / "docs")
    window = make_window(home)
    drop_files(window, [notes])
    wait_ingested(qtbot, window, [notes])
    asked = []

    def cancel(*args, **kwargs):
        asked.append(args[2])
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", staticmethod(cancel))
    new = window.services.settings.with_changes(chunk_tokens=120)
    assert not window.apply_settings(new)
    assert "Changing the passage size means re-reading all 1 document" in asked[0]
    assert "(less than a minute)" in asked[0]
    assert "Search keeps working meanwhile." in asked[0] and "Re-index now?" in asked[0]
    assert load_settings(home).chunk_tokens != 120  # nothing saved, nothing re-embedded
    assert status_of(window, notes) == "ready"
    before = set(window.services.library.stored_chunk_ids())

    # The estimate follows this machine's last sizeable ingestion (1 passage in 3 minutes here)
    window.documents._event(None, IngestFinished(counts={}, seconds=46080.0, chunks=256))
    assert window.services.history.get_state("ingest/chunks_per_s") == "0.00556"
    asked.clear()
    assert not window.apply_settings(new)
    assert "(about 3 minutes)" in asked[0]

    monkeypatch.setattr(
        QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes)
    )
    assert window.apply_settings(new)
    qtbot.waitUntil(lambda: set(window.services.library.stored_chunk_ids()) != before, timeout=LONG)
    wait_ingested(qtbot, window, [notes])
    assert load_settings(home).chunk_tokens == 120
    assert not set(window.services.library.stored_chunk_ids()) & before  # re-cut, old cut gone


def test_second_window_is_refused_with_a_message(home, monkeypatch):
    from app.core.instance import InstanceLock
    from app.gui.main import run_window

    shown = []
    monkeypatch.setattr(QMessageBox, "information", staticmethod(lambda *a: shown.append(a[2])))
    with InstanceLock(home, "ingest"):
        assert run_window([]) == 2
    assert shown and "already using the library" in shown[0]


def test_a_full_disk_or_a_damaged_library_met_while_adding_is_acted_on(
    qtbot, make_window, home, monkeypatch
):
    """The ingest lane turns store trouble into an event: a full disk is said with where to
    make room; damage opens the rebuild dialog with what is damaged."""
    from app.core.store_health import DiskFull
    from app.gui import repair_dialog

    window = make_window(home)
    said, offered = [], []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *a, **k: said.append(a[2])))
    monkeypatch.setattr(repair_dialog.RepairDialog, "exec", lambda self: offered.append(self))

    def full(job):
        raise OSError(28, "No space left on device")
        yield

    window.ingest_lane.submit("ingest", full)
    qtbot.waitUntil(lambda: bool(said), timeout=LONG)
    assert said[0] == str(DiskFull(home)) and not offered

    (home / "library.sqlite3").write_bytes(b"this is not a database" * 100)

    def damaged(job):
        raise RuntimeError("database disk image is malformed")
        yield

    window.ingest_lane.submit("ingest", damaged)
    qtbot.waitUntil(lambda: bool(offered), timeout=LONG)
    assert "library.sqlite3" in offered[0].text.text()
    assert len(said) == 1  # no generic 'Adding documents failed' box on top


def test_a_damaged_chats_file_is_said_once_at_start(qtbot, make_window, home, monkeypatch):
    home.mkdir(parents=True, exist_ok=True)
    (home / "chats.sqlite3").write_bytes(b"garbage, not SQLite" * 50)
    told = []
    monkeypatch.setattr(QMessageBox, "information", staticmethod(lambda *a, **k: told.append(a[2])))
    window = make_window(home)
    window.show_start_notes()
    assert told and "could not be read" in told[0] and "damaged" in told[0]
    assert window.services.history.conversations() == []  # a fresh chats file works


def test_a_refused_settings_value_is_said_at_start(qtbot, make_window, home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text("sources = -3\n", encoding="utf-8")
    window = make_window(home)
    window.show_start_notes()
    said = window.statusBar().currentMessage()
    assert "'sources' must be a whole number from 1 to 20 (it is -3)" in said


def test_a_closed_window_is_freed_at_once_not_by_the_garbage_collector(make_services, home):
    """No Python cycle through the window: the cyclic collector runs on whichever thread
    allocates, and a window it frees from a lane's thread is a segfault (seen when a closure
    over the window was kept by the start note's button)."""
    import gc
    import weakref

    from app.gui.main_window import MainWindow

    gc.collect()
    gc.disable()
    try:
        window = MainWindow(make_services(home))
        window.show()
        window.show_start_notes()  # the built-in model's note, with its button
        assert window.chat.notice.isVisible()
        window.close()
        window.shutdown()
        ref = weakref.ref(window)
        del window
        QApplication.processEvents()
        assert ref() is None, gc.get_referrers(ref())
    finally:
        gc.enable()


# Last in this file: a window run through run_window() and QApplication.quit() leaves later
# windows of the same process unable to finish an ingestion (a pre-existing test-order effect).
def test_run_window_opens_and_closes_cleanly(qtbot, home, monkeypatch):
    """The real start path: lock, services, window, background loading; closing joins it all."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.core.instance import InstanceLock
    from app.gui.main import run_window
    from app.gui.main_window import MainWindow

    seen = {}

    def close_soon():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        if not windows or not windows[0].isVisible():
            QTimer.singleShot(20, close_soon)
            return
        seen["status"] = windows[0].model_label.text()
        windows[0].close()
        QApplication.quit()

    QTimer.singleShot(0, close_soon)
    started = time.perf_counter()
    assert run_window([]) == 0
    assert seen["status"] in ("Loading model…",) or "·" in seen["status"]
    assert time.perf_counter() - started < 60
    InstanceLock(home, "window").acquire().release()  # the lock was released


def test_a_damaged_library_at_start_offers_the_rebuild_before_the_window(qtbot, home, monkeypatch):
    from app.gui import repair_dialog
    from app.gui.main import run_window

    home.mkdir(parents=True, exist_ok=True)
    (home / "library.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    offered, warned = [], []
    monkeypatch.setattr(repair_dialog.RepairDialog, "exec", lambda self: offered.append(self))
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *a, **k: warned.append(a[2])))
    assert run_window([]) == 3  # closed without rebuilding: not opened on a damaged library
    assert offered and "library.sqlite3" in offered[0].text.text()
    assert warned and "confidant repair" in warned[0]
