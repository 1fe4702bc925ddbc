"""Settings: model file, GPU layers, context size, embedding model, sources, strictness.

The dialog only edits a copy of Settings and validates it (a GGUF is inspected before it is
accepted); saving, re-indexing and reloading the model are the main window's job.
"""

from __future__ import annotations

from pathlib import Path

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
    QVBoxLayout,
    QWidget,
)

from app.config import Settings
from app.core.gguf_check import ModelFileError, inspect_gguf
from app.gui.drops import keep_copy

LOCKED_TIP = "Set by your IT department."


def check_model_file(path: str) -> str | None:
    """None when `path` is empty (the built-in model) or a usable GGUF; else why not."""
    if not path.strip():
        return None
    try:
        inspect_gguf(Path(path).expanduser())
    except ModelFileError as exc:
        return str(exc)
    except OSError as exc:
        return f"'{Path(path).name}' could not be read ({exc.strerror or exc})."
    return None


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
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.original = settings
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 20, 20, 16)
        layout.setSpacing(12)
        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(10)

        # model file
        self.model_edit = _PathEdit(settings.llm_path)
        self.model_edit.setPlaceholderText("Built-in small model (SmolLM2-135M)")
        self.model_edit.editingFinished.connect(self._validate_model)
        self.model_error = QLabel()
        self.model_error.setObjectName("errorText")
        self.model_error.setWordWrap(True)
        self.model_error.hide()
        form.addRow(
            "&Model file:",
            self._with_browse(self.model_edit, self._browse_model, "llm_path", self.model_error),
        )

        self.gpu_spin = QSpinBox()
        self.gpu_spin.setRange(-1, 999)
        self.gpu_spin.setSpecialValueText("Auto (as many as fit)")
        self.gpu_spin.setValue(settings.gpu_layers)
        self.gpu_spin.setToolTip(
            "Layers of the model placed on the graphics card. "
            "Auto uses as many as fit; 0 uses only the processor."
        )
        form.addRow("&GPU layers:", self.gpu_spin)

        self.ctx_spin = QSpinBox()
        self.ctx_spin.setRange(512, 131072)
        self.ctx_spin.setSingleStep(512)
        self.ctx_spin.setSuffix(" tokens")
        self.ctx_spin.setValue(settings.context_size)
        self.ctx_spin.setToolTip(
            "How much text the model reads at once (question + sources + answer)."
        )
        form.addRow("&Context size:", self.ctx_spin)

        self.embedder_edit = _PathEdit(settings.embedder_path)
        self.embedder_edit.setPlaceholderText("Built-in (all-MiniLM-L6-v2)")
        form.addRow(
            "&Embedding model:",
            self._with_browse(self.embedder_edit, self._browse_embedder, "embedder_path"),
        )

        self.sources_spin = QSpinBox()
        self.sources_spin.setRange(1, 20)
        self.sources_spin.setValue(settings.sources)
        self.sources_spin.setToolTip("How many passages the model is given to answer from.")
        form.addRow("&Number of sources:", self.sources_spin)

        self.strict_check = QCheckBox("&Answer only from my documents")
        self.strict_check.setChecked(settings.only_from_documents)
        self.strict_check.setToolTip(
            "When nothing relevant is found, say so instead of answering from general knowledge."
        )
        form.addRow("", self.strict_check)
        layout.addLayout(form)

        for key, widget in (
            ("gpu_layers", self.gpu_spin),
            ("context_size", self.ctx_spin),
            ("sources", self.sources_spin),
            ("only_from_documents", self.strict_check),
        ):
            self._lock(key, widget)

        note = QLabel(
            "Changing the model takes effect with the next question. Changing the "
            "embedding model means re-reading every document."
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

    def _lock(self, key: str, widget: QWidget) -> None:
        if key in self.original.locked:
            widget.setEnabled(False)
            widget.setToolTip(LOCKED_TIP)

    def _with_browse(
        self, edit: QLineEdit, browse, key: str, error: QLabel | None = None
    ) -> QWidget:
        box = QWidget()
        v = QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(4)
        row = QHBoxLayout()
        row.setSpacing(6)
        row.addWidget(edit, 1)
        button = QPushButton("Browse…")
        button.clicked.connect(browse)
        row.addWidget(button)
        v.addLayout(row)
        if error is not None:
            v.addWidget(error)
        if key in self.original.locked:
            edit.setEnabled(False)
            button.setEnabled(False)
            edit.setToolTip(LOCKED_TIP)
        return box

    def _browse_model(self) -> None:
        start = self.model_edit.text() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a model file", start, "GGUF models (*.gguf);;All files (*)"
        )
        if path:
            self.model_edit.setText(path)
            self._validate_model()

    def _browse_embedder(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self, "Choose an embedding model folder", self.embedder_edit.text() or str(Path.home())
        )
        if path:
            self.embedder_edit.setText(path)

    def _validate_model(self) -> bool:
        problem = check_model_file(self.model_edit.text())
        self.model_error.setText(problem or "")
        self.model_error.setVisible(bool(problem))
        return problem is None

    def _validate_embedder(self) -> bool:
        text = self.embedder_edit.text().strip()
        if text and not (Path(text).expanduser() / "config.json").is_file():
            self.model_error.setText(
                f"'{text}' is not a sentence-transformers model folder (it has no config.json)."
            )
            self.model_error.show()
            return False
        return True

    def accept(self) -> None:
        if self._validate_model() and self._validate_embedder():
            super().accept()

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
