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
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.config import Settings
from app.core.gguf_check import ModelFileError, inspect_gguf
from app.gui.drops import keep_copy

LOCKED_TIP = "Set by your IT department."


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
    def __init__(
        self, settings: Settings, parent: QWidget | None = None, gpu: bool | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.original = settings
        self.gpu = has_gpu() if gpu is None else gpu
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
        self.model_edit.setToolTip(
            "The model that writes the answers: a .gguf file, for example one from LM Studio "
            "or GPT4All. Leave empty for the built-in one."
        )
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
        form.addRow("&Chat model:", model_row)
        self.model_error = self._error_label()
        form.addRow(self.model_error)  # the whole width: a long sentence wraps, never cut

        self.sources_spin = QSpinBox()
        self.sources_spin.setRange(1, 20)
        self.sources_spin.setValue(settings.sources)
        self.sources_spin.setAccessibleName("Passages per answer")
        self.sources_spin.setToolTip(
            "How many passages of your documents each answer is written from. More gives the "
            "model more to go on, and takes longer."
        )
        form.addRow("&Passages per answer:", self.sources_spin)

        self.strict_check = QCheckBox("&Answer only from my documents")
        self.strict_check.setChecked(settings.only_from_documents)
        self.strict_check.setToolTip(
            "When your documents do not answer a question, say so instead of answering from "
            "general knowledge."
        )
        form.addRow("", self.strict_check)
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
        adv = QFormLayout(self.advanced)
        adv.setContentsMargins(12, 0, 0, 0)
        adv.setHorizontalSpacing(16)
        adv.setVerticalSpacing(10)

        self.gpu_spin = QSpinBox()
        self.gpu_spin.setRange(-1, 999)
        self.gpu_spin.setSpecialValueText("Auto (as many as fit)")
        self.gpu_spin.setValue(settings.gpu_layers)
        self.gpu_spin.setAccessibleName("Model layers on the graphics card")
        self.gpu_spin.setToolTip(
            "How much of the model runs on the graphics card (faster). Auto puts as much as "
            "fits; 0 uses only the processor."
        )
        self.no_gpu_label = QLabel(
            "No graphics card that Confidant can use was found: answers are computed on the "
            "processor."
        )
        self.no_gpu_label.setWordWrap(True)
        self.no_gpu_label.setObjectName("mutedLabel")
        if self.gpu:
            adv.addRow("&Graphics card:", self.gpu_spin)
        else:
            self.gpu_spin.hide()
            adv.addRow("Graphics card:", self.no_gpu_label)

        self.ctx_spin = QSpinBox()
        self.ctx_spin.setRange(512, 131072)
        self.ctx_spin.setSingleStep(512)
        self.ctx_spin.setSuffix(" tokens")
        self.ctx_spin.setValue(settings.context_size)
        self.ctx_spin.setAccessibleName("Text the model reads at once, in tokens")
        self.ctx_spin.setToolTip(
            "How much text the model reads at once: the question, the passages and the answer "
            "together (a token is about three quarters of a word). More needs more memory."
        )
        adv.addRow("&Text read at once:", self.ctx_spin)

        self.embedder_edit = _PathEdit(settings.embedder_path)
        self.embedder_edit.setPlaceholderText("Built-in (all-MiniLM-L6-v2)")
        self.embedder_edit.setAccessibleName("Search model folder")
        self.embedder_edit.setToolTip(
            "The model that finds the passages matching a question (a sentence-transformers "
            "folder). Changing it means reading every document again."
        )
        self.embedder_edit.editingFinished.connect(self._validate_embedder)
        adv.addRow(
            "&Search model:",
            self._with_browse(self.embedder_edit, self._browse_embedder, "embedder_path"),
        )
        self.embedder_error = self._error_label()
        adv.addRow(self.embedder_error)
        self.advanced.setVisible(False)
        self.advanced_toggle.toggled.connect(self._show_advanced)
        layout.addWidget(self.advanced)

        for key, widget in (
            ("gpu_layers", self.gpu_spin),
            ("context_size", self.ctx_spin),
            ("sources", self.sources_spin),
            ("only_from_documents", self.strict_check),
        ):
            self._lock(key, widget)

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
            edit.setEnabled(False)
            button.setEnabled(False)
            edit.setToolTip(LOCKED_TIP)
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

    def _validate_model(self) -> bool:
        return self._show(self.model_error, check_model_file(self.model_edit.text()))

    def _validate_embedder(self) -> bool:
        ok = self._show(self.embedder_error, check_embedder_folder(self.embedder_edit.text()))
        if not ok:
            self.advanced_toggle.setChecked(True)  # the field with the problem is in view
        return ok

    def accept(self) -> None:
        model_ok = self._validate_model()
        embedder_ok = self._validate_embedder()
        if model_ok and embedder_ok:
            super().accept()
            return
        # Save did not close the dialog: show why, where the eye goes (the field at fault).
        self.adjustSize()
        field = self.model_edit if not model_ok else self.embedder_edit
        field.setFocus()
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
        )
