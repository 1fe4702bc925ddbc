"""The Settings dialog as staff meet it: plain words, errors in full under the field at fault,
Save that says why it did not close, no graphics-card choice where there is no card."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from app.config import Settings
from app.gui.settings_dialog import SettingsDialog, check_model_file


def _dialog(qtbot, gpu: bool, **changes) -> SettingsDialog:
    dialog = SettingsDialog(Settings(**changes), gpu=gpu)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def test_a_wrong_model_file_is_said_in_full_and_save_stays(qtbot, tmp_path, shots):
    bad = tmp_path / "contract.pdf.gguf"
    bad.write_bytes(b"%PDF-1.4 this is a document, not a model" * 50)
    dialog = _dialog(qtbot, gpu=False)
    dialog.model_edit.setText(str(bad))
    dialog.accept()
    QApplication.processEvents()
    assert dialog.isVisible() and dialog.result() != SettingsDialog.DialogCode.Accepted
    text = dialog.model_error.text()
    assert text.startswith("“contract.pdf.gguf” is not a chat model.")
    assert "GGUF" not in text and "llama.cpp" not in text  # no jargon
    assert dialog.model_edit.hasFocus()  # Save went to the field at fault
    # The whole sentence is shown: wrapped to as many lines as it needs, none cut.
    label = dialog.model_error
    assert label.isVisible() and label.height() >= label.heightForWidth(label.width())
    dialog.grab().save(str(shots / "settings-bad-model.png"))


def test_a_missing_model_file_says_so_without_sending_the_user_to_settings(qtbot, tmp_path):
    problem = check_model_file(str(tmp_path / "gone.gguf"))
    assert problem.startswith("There is no file at") and "gone.gguf" in problem
    assert "in Settings" not in problem and "--model" not in problem
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 8)  # a download cut short
    problem = check_model_file(str(cut))
    assert problem.startswith("This file cannot be used as the chat model.")


def test_a_bad_search_model_folder_shows_under_its_own_field(qtbot, tmp_path):
    folder = tmp_path / "not-a-model"
    folder.mkdir()
    dialog = _dialog(qtbot, gpu=False)
    assert not dialog.advanced.isVisible()  # folded away until wanted
    dialog.embedder_edit.setText(str(folder))
    dialog.accept()
    QApplication.processEvents()
    assert dialog.result() != SettingsDialog.DialogCode.Accepted
    assert dialog.advanced.isVisible()  # opened to show the problem
    assert "not-a-model" in dialog.embedder_error.text()
    assert dialog.embedder_error.isVisible() and not dialog.model_error.isVisible()
    dialog.embedder_edit.setText("")
    dialog.accept()
    assert dialog.result() == SettingsDialog.DialogCode.Accepted


def test_graphics_card_choice_only_with_a_card(qtbot):
    without = _dialog(qtbot, gpu=False)
    without.advanced_toggle.setChecked(True)
    assert not without.gpu_spin.isVisible()
    assert "processor" in without.no_gpu_label.text() and without.no_gpu_label.isVisible()
    with_card = _dialog(qtbot, gpu=True, gpu_layers=0)
    with_card.advanced_toggle.setChecked(True)
    assert with_card.gpu_spin.isVisible() and not with_card.no_gpu_label.isVisible()
    assert with_card.result_settings().gpu_layers == 0


def test_every_control_has_a_name_a_screen_reader_can_say(qtbot):
    from PySide6.QtGui import QAccessible
    from PySide6.QtWidgets import QAbstractSpinBox, QWidget

    dialog = _dialog(qtbot, gpu=True)
    dialog.advanced_toggle.setChecked(True)
    unnamed = []
    for w in dialog.findChildren(QWidget):
        if not w.isVisible() or not w.focusPolicy() & w.focusPolicy().TabFocus:
            continue
        if isinstance(w.parent(), QAbstractSpinBox):  # the box's own text field: the box is named
            continue
        iface = QAccessible.queryAccessibleInterface(w)
        if iface is None or not iface.text(QAccessible.Text.Name).strip():
            unnamed.append(f"{type(w).__name__} {w.objectName()}")
    assert not unnamed, unnamed
