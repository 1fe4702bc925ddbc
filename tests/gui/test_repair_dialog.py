"""The rebuild dialog: names the damage, runs the repair off the GUI thread, draws its events."""

from __future__ import annotations

from pathlib import Path

from app.core.events import FileDone, IngestStarted
from app.core.repair import RepairFinished, RepairStarted
from app.core.store_health import Damage, HealthReport
from app.gui.repair_dialog import RepairDialog


class _Services:
    def repair(self, cancel):
        kept = Path("/data/damaged-1")
        yield RepairStarted((), kept, ("/d/a.txt", "/d/b.txt"), ("/d/c.txt",), False, "x")
        yield IngestStarted(total=2, interrupted=())
        yield FileDone("/d/a.txt", "added", chunks=3)
        yield FileDone("/d/b.txt", "added", chunks=2)
        yield RepairFinished({"added": 2}, 1.0, False, kept, ("/d/c.txt",))


def test_the_dialog_names_the_damage_and_reports_the_rebuild(qtbot):
    damage = Damage("the vector store", Path("/data/library"), "it is missing")
    dialog = RepairDialog(_Services(), HealthReport(library=[damage]))
    qtbot.addWidget(dialog)
    assert "the vector store (/data/library): it is missing" in dialog.text.text()
    assert "chats and settings are kept" in dialog.text.text()
    dialog.rebuild.click()
    qtbot.waitUntil(lambda: dialog.finished_event is not None, timeout=5000)
    assert dialog.status.text() == "The library is rebuilt: 2 document(s), 1 not found."
    assert dialog.close_button.text() == "Close" and not dialog.rebuild.isEnabled()
