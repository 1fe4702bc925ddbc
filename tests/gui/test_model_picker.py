"""The model picker lists what is on the computer with whether it fits, hands back the choice,
offers downloads only when IT allows them, and the first start with only the built-in model
says so once and opens it."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog

from app.config import Settings, default_llm_path
from app.core.model_catalog import GiB, Memory, scan
from app.gui import model_picker
from app.gui.model_picker import ModelPicker, offer_real_model
from tests.gguf_shapes import write_shape


@pytest.fixture
def found(tmp_path):
    home = tmp_path / "home"
    big = home / ".lmstudio/models/org/repo/Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    big.parent.mkdir(parents=True)
    write_shape(big, "8b")
    memory = Memory(3 * GiB, 8 * GiB, 16 * GiB, 32 * GiB, "RTX Test", True)
    return scan(home=home, env={}, memory=memory, embedded=default_llm_path()), big


def _picker(qtbot, tmp_path, found, settings=None) -> ModelPicker:
    catalog, _ = found
    picker = ModelPicker(settings or Settings(), tmp_path, scan=lambda: catalog)
    qtbot.addWidget(picker)
    qtbot.waitUntil(lambda: picker.list.count() == 2, timeout=5000)
    return picker


def test_models_are_listed_with_their_fit_and_the_choice_comes_back(qtbot, tmp_path, found):
    picker = _picker(qtbot, tmp_path, found)
    texts = [picker.list.item(i).text() for i in range(picker.list.count())]
    assert texts[0].startswith("Llama-3.1-8B-Instruct\n")
    assert "of 33 layers on the graphics card" in texts[0] and "from LM Studio" in texts[0]
    assert "RTX Test with 3.2 GB free" in picker.summary.text()
    assert picker.list.currentRow() == 1  # the built-in one is in use
    picker.list.setCurrentRow(0)
    picker.accept()
    assert picker.result() == QDialog.DialogCode.Accepted
    assert picker.chosen == str(found[1])


def test_the_built_in_model_is_chosen_as_empty(qtbot, tmp_path, found):
    picker = _picker(qtbot, tmp_path, found, Settings(llm_path=str(found[1])))
    assert picker.list.currentRow() == 0  # the one in the settings is selected
    picker.list.setCurrentRow(1)
    picker.accept()
    assert picker.chosen == ""


def test_downloads_follow_the_policy(qtbot, tmp_path, found):
    allowed = _picker(qtbot, tmp_path, found)
    assert allowed.downloads.count() >= 3
    allowed.downloads.setCurrentRow(0)
    assert allowed.download_button.isEnabled()
    off = _picker(qtbot, tmp_path, found, replace(Settings(), allow_downloads=False))
    off.downloads.setCurrentRow(0)
    assert not off.download_button.isEnabled()
    assert "switched off" in off.download_note.text()


def test_a_locked_model_cannot_be_changed(qtbot, tmp_path, found):
    picker = _picker(qtbot, tmp_path, found, Settings(locked=frozenset({"llm_path"})))
    picker.list.setCurrentRow(0)
    assert not picker.use_button.isEnabled()


class _History:
    def __init__(self) -> None:
        self.state: dict[str, str] = {}

    def get_state(self, key, default=None):
        return self.state.get(key, default)

    def set_state(self, key, value):
        self.state[key] = value


def test_first_start_with_the_built_in_model_says_so_once(qtbot, tmp_path, monkeypatch):
    """A note across the conversation (no dialog that would hold the start), once; its button
    opens the picker."""
    from app.gui.chat_view import ChatView

    opened = []
    chat = ChatView()
    qtbot.addWidget(chat)
    chat.show()
    window = SimpleNamespace(
        services=SimpleNamespace(settings=Settings(), history=_History(), home=tmp_path),
        chat=chat,
    )
    window.open_model_picker = lambda: opened.append(window)
    offer_real_model(window)
    assert chat.notice.isVisible() and "weak" in chat.notice_label.text()
    assert chat.notice_label.text() == model_picker.WEAK_MODEL_NOTICE
    qtbot.mouseClick(chat.notice_button, Qt.MouseButton.LeftButton)
    assert opened == [window] and not chat.notice.isVisible()
    offer_real_model(window)  # once only
    assert not chat.notice.isVisible()
    # a real model in the settings, or one IT has set: nothing said
    for settings in (Settings(llm_path="/m.gguf"), Settings(locked=frozenset({"llm_path"}))):
        other_chat = ChatView()
        qtbot.addWidget(other_chat)
        other = SimpleNamespace(
            services=SimpleNamespace(settings=settings, history=_History(), home=tmp_path),
            chat=other_chat,
            open_model_picker=lambda: None,
        )
        offer_real_model(other)
        assert other_chat.notice.isHidden()


def test_settings_has_a_choose_button_that_fills_the_model(qtbot, tmp_path, monkeypatch, found):
    from app.gui.settings_dialog import SettingsDialog

    monkeypatch.setenv("CONFIDANT_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(ModelPicker, "exec", lambda self: QDialog.DialogCode.Accepted)
    monkeypatch.setattr(ModelPicker, "_default_scan", lambda self: found[0])
    monkeypatch.setattr(
        ModelPicker, "accept", lambda self: setattr(self, "chosen", str(default_llm_path()))
    )
    original_exec = ModelPicker.exec

    def exec_and_choose(self):
        self.chosen = str(default_llm_path())
        return original_exec(self)

    monkeypatch.setattr(ModelPicker, "exec", exec_and_choose)
    dialog = SettingsDialog(Settings(), gpu=False)
    qtbot.addWidget(dialog)
    qtbot.mouseClick(dialog.choose_button, Qt.MouseButton.LeftButton)
    assert dialog.model_edit.text() == str(default_llm_path())
    assert not dialog.model_error.isVisible()
