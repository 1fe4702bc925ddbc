"""The Settings dialog as staff meet it: plain words, errors in full under the field at fault,
Save that says why it did not close, no graphics-card choice where there is no card."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QLineEdit

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


def test_help_ranges_and_checks_come_from_the_field_metadata(qtbot, monkeypatch):
    import copy
    from types import MappingProxyType

    from app import config

    dialog = _dialog(qtbot, gpu=True)
    for key, spin in (
        ("sources", dialog.sources_spin),
        ("gpu_layers", dialog.gpu_spin),
        ("context_size", dialog.ctx_spin),
    ):
        meta = config.field_meta(key)
        assert (spin.minimum(), spin.maximum()) == (meta["min"], meta["max"]), key
    for key, control in dialog.fields.items():
        assert control.toolTip() == config.field_meta(key)["doc"], key
    # Another field's metadata (a test-made one): the dialog follows it, and so do the checks.
    narrow = copy.copy(config._FIELDS["sources"])
    narrow.metadata = MappingProxyType({"doc": "Made by the test.", "min": 2, "max": 7})
    monkeypatch.setitem(config._FIELDS, "sources", narrow)
    dialog = _dialog(qtbot, gpu=False)
    assert (dialog.sources_spin.minimum(), dialog.sources_spin.maximum()) == (2, 7)
    assert dialog.sources_spin.toolTip() == "Made by the test."
    assert config.problem_with("sources", 9) == "This must be a whole number from 2 to 7."
    assert config.problem_with("sources", 7) is None


def test_team_servers_keep_their_secrets_out_of_sight(qtbot):
    dialog = _dialog(
        qtbot,
        gpu=False,
        library_server="https://library.example:8000",
        library_token="tok-9c1d-secret",
        llm_server="https://models.example:8080/v1",
        llm_api_key="key-77ab-secret",
        llm_model="qwen",
    )
    assert not dialog.team_box.isVisible()  # under Advanced
    dialog.advanced_toggle.setChecked(True)
    assert dialog.team_box.isVisible()
    for edit, secret in (
        (dialog.token_edit, "tok-9c1d-secret"),
        (dialog.api_key_edit, "key-77ab-secret"),
    ):
        assert edit.echoMode() == edit.EchoMode.Password
        assert secret not in edit.displayText()
    assert dialog.library_edit.text() == "https://library.example:8000"
    dialog.llm_model_edit.setText("llama-8b")
    dialog.api_key_edit.setText("key-new")
    dialog.accept()
    assert dialog.result() == SettingsDialog.DialogCode.Accepted
    saved = dialog.result_settings()
    assert (saved.llm_model, saved.llm_api_key, saved.library_token) == (
        "llama-8b",
        "key-new",
        "tok-9c1d-secret",
    )


def test_plain_http_to_another_computer_is_refused_under_its_field(qtbot):
    from app.config import problem_with

    dialog = _dialog(qtbot, gpu=False)
    dialog.library_edit.setText("http://files.example:8000")
    dialog.accept()
    QApplication.processEvents()
    assert dialog.result() != SettingsDialog.DialogCode.Accepted
    assert dialog.advanced.isVisible() and dialog.library_error.isVisible()
    # config's own sentence, not one retyped here
    assert dialog.library_error.text() == problem_with(
        "library_server", "http://files.example:8000"
    )
    assert "plain http" in dialog.library_error.text()
    assert dialog.library_edit.hasFocus() and not dialog.llm_server_error.isVisible()
    dialog.insecure_check.setChecked(True)  # the network is trusted: the error goes at once
    assert not dialog.library_error.isVisible()
    dialog.llm_server_edit.setText("ftp://models.example/v1")
    dialog.accept()
    assert dialog.result() != SettingsDialog.DialogCode.Accepted
    assert "is not an http:// or https:// URL" in dialog.llm_server_error.text()
    dialog.llm_server_edit.setText("http://127.0.0.1:8080/v1")  # this computer: plain http is fine
    dialog.insecure_check.setChecked(False)
    dialog.library_edit.setText("https://files.example:8000")
    dialog.accept()
    assert dialog.result() == SettingsDialog.DialogCode.Accepted
    saved = dialog.result_settings()
    assert (saved.library_server, saved.llm_server) == (
        "https://files.example:8000",
        "http://127.0.0.1:8080/v1",
    )


def test_keys_it_locked_are_shown_disabled_and_their_token_never_enters_the_dialog(
    qtbot, home, tmp_path
):
    import os

    from app.config import load_settings
    from app.gui.settings_dialog import LOCKED_TIP

    machine = tmp_path / "no-machine-settings.toml"
    assert os.environ["CONFIDANT_MACHINE_SETTINGS"] == str(machine)
    machine.write_text(
        'library_server = "https://library.corp:8000"\nlibrary_token = "it-token-5f2e"\n'
        'sources = 8\n[locked]\nkeys = ["library_server", "library_token", "sources"]\n',
        encoding="utf-8",
    )
    settings = load_settings(home)
    dialog = SettingsDialog(settings, gpu=False)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.advanced_toggle.setChecked(True)
    for control in (dialog.library_edit, dialog.token_edit, dialog.sources_spin):
        assert not control.isEnabled() and control.toolTip() == LOCKED_TIP
    assert dialog.library_edit.text() == "https://library.corp:8000"
    assert dialog.llm_server_edit.isEnabled()
    note = dialog.team_locked_note
    assert note.isVisible() and "library server" in note.text() and "its token" in note.text()
    assert not [w for w in dialog.findChildren(QLineEdit) if "it-token-5f2e" in w.text()]
    dialog.llm_server_edit.setText("https://models.corp/v1")
    dialog.accept()
    saved = dialog.result_settings()
    assert saved.library_token == "it-token-5f2e" and saved.sources == 8  # IT's, unchanged
    assert saved.llm_server == "https://models.corp/v1"
