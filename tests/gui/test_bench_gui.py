"""`confidant bench --gui`: the lag probe sees a blocked GUI thread, and the whole run works."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer

from bench.gui import LIMIT_MS, LagProbe, bench_gui, format_gui

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "sample"


def test_the_probe_reports_a_blocked_gui_thread_and_when(qtbot):
    probe = LagProbe()
    probe.start()
    qtbot.wait(100)
    QTimer.singleShot(0, lambda: time.sleep(0.15))  # the GUI thread busy for 150 ms
    qtbot.wait(200)
    stats = probe.stop()
    assert stats.over_limit == 1
    assert 130 <= stats.max_ms < 400
    assert stats.worst and stats.worst[0][1] == stats.max_ms and 0.05 < stats.worst[0][0] < 0.35
    probe.start()  # a quiet phase after it starts from zero
    qtbot.wait(150)
    quiet = probe.stop()
    assert quiet.over_limit == 0 and quiet.ticks > 5 and quiet.max_ms < LIMIT_MS


@pytest.mark.slow
def test_bench_gui_ingests_answers_and_reports(home):
    result = bench_gui(SAMPLE, "When was Brindle Point built?").as_dict()
    assert result["documents"] == 1
    assert result["answer_role"] == "assistant" and result["answer_chars"] > 0
    assert result["visible_ms"] is not None and result["visible_ms"] > 0
    assert all(result[phase]["ticks"] > 0 for phase in ("startup", "ingest", "answer"))
    text = format_gui(result)
    assert "window visible" in text and "GUI lag max" in text
