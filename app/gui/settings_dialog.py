"""Settings, in words office staff use: the chat model, how many passages an answer draws on,
whether to answer only from the documents; the rest (graphics card, how much the model reads at
once, the search model) under "Advanced".

The dialog only edits a copy of Settings and validates it (a GGUF is inspected before it is
accepted); saving, re-indexing and reloading the model are the main window's job.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.config import Settings, field_meta, problem_with
from app.core.gguf_check import ModelFileError, inspect_gguf
from app.gui.drops import keep_copy

LOCKED_TIP = "Set by your IT department."
BASIC_KEYS = ("llm_path", "sources", "only_from_documents")  # shown with Advanced folded
TEAM_LABELS = {
    "library_server": "library server",
    "library_token": "its token",
    "library_path_map": "shared paths",
    "llm_server": "model server",
    "llm_api_key": "its API key",
    "llm_model": "model name",
    "allow_insecure_http": "plain http",
}
TEAM_KEYS = tuple(TEAM_LABELS)


def check_model_file(path: str) -> str | None:
    """None when `path` is empty (the built-in model) or a usable GGUF; else why not, in words
    for this dialog (the file check's own messages also serve the command line)."""
    if not path.strip():
        return None
    target = Path(path.strip()).expanduser()
    if not os.path.lexists(target):
        return f"There is no file at “{target}”. Choose the model file again with Browse…"
    try:
        with open(target, "rb") as f:
            head = f.read(4) if target.is_file() else b"GGUF"  # a folder or a device: see below
    except OSError:
        head = b"GGUF"  # the file check below says what is wrong
    if head != b"GGUF":
        return (
            f"“{target.name}” is not a chat model. Chat models are .gguf files, usually of "
            "several hundred megabytes or more; choose one from LM Studio, GPT4All or your IT "
            "department, or leave this empty for the built-in model."
        )
    try:
        inspect_gguf(target)
    except ModelFileError as exc:
        return f"This file cannot be used as the chat model. {exc}"
    except OSError as exc:
        return f"“{target.name}” could not be read ({exc.strerror or exc})."
    return None


def check_embedder_folder(path: str) -> str | None:
    """None when `path` is empty (the built-in search model) or a model folder; else why not."""
    text = path.strip()
    if not text:
        return None
    folder = Path(text).expanduser()
    if not folder.is_dir():
        return f"There is no folder at “{folder}”. Choose the search model's folder again."
    if not (folder / "config.json").is_file():
        return (
            f"“{folder.name}” is not a search model folder (a sentence-transformers model has a "
            "config.json file in it). Leave this empty to use the built-in one."
        )
    return None


def has_gpu() -> bool:
    """Whether this computer has a graphics card llama.cpp can use: an NVIDIA driver on
    Linux and Windows, Apple silicon on macOS. A quick look, never a model load."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        try:
            return any(gpus.iterdir())
        except OSError:
            return False
    return shutil.which("nvidia-smi") is not None


class _PathEdit(QLineEdit):
    """A path field: text dragged in from another program (a file manager's path) is taken as
    a copy, never a move that could make the source delete it (app/gui/drops.py)."""

    def dragEnterEvent(self, event) -> None:
        super().dragEnterEvent(event)
        keep_copy(event, (self,))

    def dragMoveEvent(self, event) -> None:
        super().dragMoveEvent(event)
        keep_copy(event, (self,))

    def dropEvent(self, event) -> None:
        super().dropEvent(event)
        keep_copy(event, (self,))


class SettingsDialog(QDialog):
    """Each field's help, a number's range and the checks before Save come from the setting's
    metadata in app/config.py (field_meta, problem_with): nothing here retypes them."""

    def __init__(
        self, settings: Settings, parent: QWidget | None = None, gpu: bool | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.original = settings
        self.gpu = has_gpu() if gpu is None else gpu
        self.fields: dict[str, QWidget] = {}  # key -> its control
        self.errors: dict[str, QLabel] = {}  # key -> the sentence under it when refused
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 20, 20, 16)
        layout.setSpacing(12)
        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(10)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)

        # the chat model
        self.model_edit = _PathEdit(settings.llm_path)
        self.model_edit.setPlaceholderText("Built-in small model (quick, but answers are basic)")
        self.model_edit.setAccessibleName("Chat model file")
        self.model_edit.editingFinished.connect(self._validate_model)
        model_row = self._with_browse(self.model_edit, self._browse_model, "llm_path")
        self.choose_button = QPushButton("C&hoose…")
        self.choose_button.setAccessibleName("Choose among the models on this computer")
        self.choose_button.setToolTip(
            "The models already on this computer (LM Studio, GPT4All, Jan, Ollama, Downloads…) "
            "and whether each fits the graphics card; a few to download if allowed."
        )
        self.choose_button.clicked.connect(self._choose_model)
        self.choose_button.setEnabled("llm_path" not in settings.locked)
        model_row.layout().insertWidget(1, self.choose_button)
        self.model_error = self._add(form, "&Chat model:", "llm_path", self.model_edit, model_row)

        self.sources_spin = self._spin("sources", "Passages per answer")
        self._add(form, "&Passages per answer:", "sources", self.sources_spin)

        self.strict_check = QCheckBox("&Answer only from my documents")
        self.strict_check.setChecked(settings.only_from_documents)
        self._add(form, "", "only_from_documents", self.strict_check)
        layout.addLayout(form)

        # advanced: folded away
        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setAutoRaise(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setAccessibleName("Show advanced settings")
        layout.addWidget(self.advanced_toggle)
        self.advanced = QWidget()
        outer = QVBoxLayout(self.advanced)
        outer.setContentsMargins(12, 0, 0, 0)
        outer.setSpacing(10)
        adv = QFormLayout()
        adv.setHorizontalSpacing(16)
        adv.setVerticalSpacing(10)
        outer.addLayout(adv)

        self.gpu_spin = self._spin("gpu_layers", "Model layers on the graphics card")
        self.gpu_spin.setSpecialValueText("Auto (as many as fit)")
        self.no_gpu_label = QLabel(
            "No graphics card that Confidant can use was found: answers are computed on the "
            "processor."
        )
        self.no_gpu_label.setWordWrap(True)
        self.no_gpu_label.setObjectName("mutedLabel")
        if self.gpu:
            self._add(adv, "&Graphics card:", "gpu_layers", self.gpu_spin)
        else:
            self.gpu_spin.hide()  # kept: its value is saved as it was
            adv.addRow("Graphics card:", self.no_gpu_label)

        self.ctx_spin = self._spin("context_size", "Text the model reads at once, in tokens")
        self.ctx_spin.setSingleStep(512)
        self.ctx_spin.setSuffix(" tokens")
        self._add(adv, "&Text read at once:", "context_size", self.ctx_spin)

        self.embedder_edit = _PathEdit(settings.embedder_path)
        self.embedder_edit.setPlaceholderText("Built-in (all-MiniLM-L6-v2)")
        self.embedder_edit.setAccessibleName("Search model folder")
        self.embedder_edit.editingFinished.connect(self._validate_embedder)
        self.embedder_error = self._add(
            adv,
            "&Search model:",
            "embedder_path",
            self.embedder_edit,
            self._with_browse(self.embedder_edit, self._browse_embedder, "embedder_path"),
        )
        outer.addWidget(self._team_servers(settings))
        self.advanced.setVisible(False)
        self.advanced_toggle.toggled.connect(self._show_advanced)
        layout.addWidget(self.advanced)

        note = QLabel(
            "A new chat model is used from the next question. A new search model means "
            "reading every document again."
        )
        note.setObjectName("mutedLabel")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

    def _team_servers(self, settings: Settings) -> QGroupBox:
        """The shared library and model server (docs/team-setup.md); tokens never shown."""
        box = self.team_box = QGroupBox("Team servers")
        team = QFormLayout(box)
        team.setHorizontalSpacing(16)
        team.setVerticalSpacing(8)

        def line(key: str, name: str, placeholder: str) -> QLineEdit:
            edit = QLineEdit()
            edit.setAccessibleName(name)
            edit.setPlaceholderText(placeholder)
            if field_meta(key).get("secret"):
                edit.setEchoMode(QLineEdit.EchoMode.Password)
                if key in settings.locked:  # IT's token never goes into a widget
                    edit.setPlaceholderText(LOCKED_TIP)
                else:
                    edit.setText(getattr(settings, key))
            else:
                edit.setText(getattr(settings, key))
            return edit

        self.library_edit = line(
            "library_server", "Team library server address", "Empty: the library on this computer"
        )
        self.library_edit.editingFinished.connect(lambda: self._validate("library_server"))
        self.library_error = self._add(
            team, "&Library server:", "library_server", self.library_edit
        )
        self.token_edit = line("library_token", "Team library token", "")
        self._add(team, "Library &token:", "library_token", self.token_edit)
        self.path_map_edit = line(
            "library_path_map", "How this computer's paths map to the team's", "LOCAL=SHARED"
        )
        self._add(team, "Shared &paths:", "library_path_map", self.path_map_edit)
        self.llm_server_edit = line(
            "llm_server", "Team model server address", "Empty: the chat model on this computer"
        )
        self.llm_server_edit.editingFinished.connect(lambda: self._validate("llm_server"))
        self.llm_server_error = self._add(
            team, "&Model server:", "llm_server", self.llm_server_edit
        )
        self.api_key_edit = line("llm_api_key", "Model server API key", "")
        self._add(team, "API &key:", "llm_api_key", self.api_key_edit)
        self.llm_model_edit = line(
            "llm_model", "Model name on the model server", "The one it serves"
        )
        self._add(team, "Model &name:", "llm_model", self.llm_model_edit)
        self.insecure_check = QCheckBox("Allow plain &http to other computers")
        self.insecure_check.setChecked(settings.allow_insecure_http)
        self.insecure_check.toggled.connect(self._revalidate_servers)
        self._add(team, "", "allow_insecure_http", self.insecure_check)
        locked = [k for k in TEAM_KEYS if k in settings.locked]
        self.team_locked_note = QLabel(
            f"{LOCKED_TIP[:-1]}: {', '.join(TEAM_LABELS[k] for k in locked)}." if locked else ""
        )
        self.team_locked_note.setObjectName("mutedLabel")
        self.team_locked_note.setWordWrap(True)
        self.team_locked_note.setVisible(bool(locked))
        team.addRow(self.team_locked_note)
        return box

    def _spin(self, key: str, name: str) -> QSpinBox:
        """A number's box, its range the field's "min" and "max"."""
        meta = field_meta(key)
        spin = QSpinBox()
        spin.setRange(int(meta["min"]), int(meta["max"]))
        spin.setValue(getattr(self.original, key))
        spin.setAccessibleName(name)
        return spin

    def _add(
        self,
        form: QFormLayout,
        label: str,
        key: str,
        control: QWidget,
        row: QWidget | None = None,
    ) -> QLabel:
        """A row for `key`: its help from the field's doc (or why it is locked), and the error
        line under it (the whole width: a long sentence wraps, never cut)."""
        self.fields[key] = control
        control.setToolTip(field_meta(key)["doc"])
        self._lock(key, control)
        form.addRow(label, row if row is not None else control)
        error = self.errors[key] = self._error_label()
        form.addRow(error)
        return error

    @staticmethod
    def _error_label() -> QLabel:
        label = QLabel()
        label.setObjectName("errorText")
        label.setWordWrap(True)
        label.setTextFormat(Qt.TextFormat.PlainText)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.hide()
        return label

    def _show_advanced(self, shown: bool) -> None:
        self.advanced.setVisible(shown)
        self.advanced_toggle.setArrowType(
            Qt.ArrowType.DownArrow if shown else Qt.ArrowType.RightArrow
        )
        self.adjustSize()

    def _lock(self, key: str, widget: QWidget) -> None:
        if key in self.original.locked:
            widget.setEnabled(False)
            widget.setToolTip(LOCKED_TIP)
            widget.setAccessibleDescription(LOCKED_TIP)

    def _with_browse(self, edit: QLineEdit, browse, key: str) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(6)
        row.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.setAccessibleName(f"Browse for the {edit.accessibleName().lower()}")
        button.clicked.connect(browse)
        row.addWidget(button)
        if key in self.original.locked:
            button.setEnabled(False)
        return box

    def _browse_model(self) -> None:
        start = self.model_edit.text() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose the chat model", start, "Chat models (*.gguf);;All files (*)"
        )
        if path:
            self.model_edit.setText(path)
            self._validate_model()

    def _choose_model(self) -> None:
        from app.gui.model_picker import ModelPicker

        services = getattr(self.parent(), "services", None)
        if services is not None:
            home = services.home
        else:
            from app.config import data_dir

            home = data_dir()
        current = self.original.with_changes(llm_path=self.model_edit.text().strip())
        picker = ModelPicker(current, home, self)
        if picker.exec() == QDialog.DialogCode.Accepted and picker.chosen is not None:
            self.model_edit.setText(picker.chosen)
            self._validate_model()

    def _browse_embedder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Choose the search model's folder", self.embedder_edit.text() or str(Path.home())
        )
        if path:
            self.embedder_edit.setText(path)
            self._validate_embedder()

    @staticmethod
    def _show(label: QLabel, problem: str | None) -> bool:
        label.setText(problem or "")
        label.setVisible(bool(problem))
        return problem is None

    def _problem(self, key: str, settings: Settings) -> str | None:
        """Why the value the dialog holds for `key` cannot be saved: config's rules, then the
        look at the file or folder a path names."""
        if key in settings.locked:
            return None
        value = getattr(settings, key)
        problem = problem_with(key, value, settings.allow_insecure_http)
        if problem is None and key == "llm_path":
            problem = check_model_file(value)
        elif problem is None and key == "embedder_path":
            problem = check_embedder_folder(value)
        return problem

    def _validate(self, key: str, settings: Settings | None = None) -> bool:
        settings = settings or self.result_settings()
        ok = self._show(self.errors[key], self._problem(key, settings))
        if not ok and key not in BASIC_KEYS:
            self.advanced_toggle.setChecked(True)  # the field with the problem is in view
        return ok

    def _revalidate_servers(self) -> None:
        for key in ("library_server", "llm_server"):
            if self.errors[key].isVisible():
                self._validate(key)

    def _validate_model(self) -> bool:
        return self._validate("llm_path")

    def _validate_embedder(self) -> bool:
        return self._validate("embedder_path")

    def accept(self) -> None:
        settings = self.result_settings()
        refused = [key for key in self.fields if not self._validate(key, settings)]
        if not refused:
            super().accept()
            return
        # Save did not close the dialog: show why, where the eye goes (the field at fault).
        self.adjustSize()
        field = self.fields[refused[0]]
        field.setFocus()
        if isinstance(field, QLineEdit):
            field.selectAll()

    def result_settings(self) -> Settings:
        """The edited settings (keys IT has locked keep their value)."""
        return self.original.with_changes(
            llm_path=self.model_edit.text().strip(),
            embedder_path=self.embedder_edit.text().strip(),
            gpu_layers=self.gpu_spin.value(),
            context_size=self.ctx_spin.value(),
            sources=self.sources_spin.value(),
            only_from_documents=self.strict_check.isChecked(),
            library_server=self.library_edit.text().strip(),
            library_token=self.token_edit.text().strip(),
            library_path_map=self.path_map_edit.text().strip(),
            llm_server=self.llm_server_edit.text().strip(),
            llm_api_key=self.api_key_edit.text().strip(),
            llm_model=self.llm_model_edit.text().strip(),
            allow_insecure_http=self.insecure_check.isChecked(),
        )
