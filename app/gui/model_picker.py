"""The chat model picker: the models already on this computer (LM Studio, GPT4All, Jan, Ollama,
the Hugging Face cache, Downloads...) with whether each fits the graphics card, and the curated
ones to download when IT allows it. Opened from Settings (Choose…) and once at first start when
only the built-in model is there.

The scan and any download run on threads of their own; the dialog only shows what they send.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.config import Settings

NOTICE_KEY = "model_notice_shown"
WEAK_MODEL_NOTICE = (
    "Confidant is using its small built-in model. It shows how everything works, but its "
    "answers will be weak. Choose a better model: Confidant lists the ones already on this "
    "computer (and, if your IT department allows it, a few to download)."
)


class _Relay(QObject):
    scanned = Signal(object)
    progress = Signal(int, int)
    downloaded = Signal(object, str)  # path or None, error text


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


class ModelPicker(QDialog):
    """exec() == Accepted: `chosen` is the model's path ("" for the built-in one)."""

    def __init__(
        self, settings: Settings, home: Path, parent: QWidget | None = None, scan=None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose the chat model")
        self.setMinimumSize(640, 480)
        self.settings, self.home = settings, home
        self.chosen: str | None = None
        self._cancel = None
        self._allowed = False
        self.catalog = None
        self._relay = _Relay(self)
        self._relay.scanned.connect(self._show_models)
        self._relay.progress.connect(self._show_progress)
        self._relay.downloaded.connect(self._download_done)

        layout = QVBoxLayout(self)
        self.summary = QLabel("Looking for models on this computer…")
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        self.list = QListWidget()
        self.list.setAccessibleName("Chat models on this computer")
        self.list.setWordWrap(True)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        layout.addWidget(self.list, 2)

        layout.addWidget(QLabel("Download a model (needs the internet, several GB):"))
        self.downloads = QListWidget()
        self.downloads.setAccessibleName("Models to download")
        self.downloads.setWordWrap(True)
        self.downloads.currentItemChanged.connect(lambda *_: self._update_buttons())
        layout.addWidget(self.downloads, 1)
        self.download_note = QLabel()
        self.download_note.setWordWrap(True)
        self.download_note.setObjectName("mutedLabel")
        layout.addWidget(self.download_note)
        row = QHBoxLayout()
        self.download_button = QPushButton("&Download")
        self.download_button.clicked.connect(self._download)
        self.stop_button = QPushButton("&Stop download")
        self.stop_button.clicked.connect(self._stop)
        self.stop_button.hide()
        self.bar = QProgressBar()
        self.bar.hide()
        row.addWidget(self.download_button)
        row.addWidget(self.stop_button)
        row.addWidget(self.bar, 1)
        layout.addLayout(row)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.use_button = self.buttons.addButton(
            "&Use this model", QDialogButtonBox.ButtonRole.AcceptRole
        )
        browse = self.buttons.addButton("&Browse…", QDialogButtonBox.ButtonRole.ActionRole)
        browse.clicked.connect(self._browse)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)

        self._fill_downloads()
        self._update_buttons()
        scan = scan or self._default_scan
        threading.Thread(target=lambda: self._relay.scanned.emit(scan()), daemon=True).start()

    def _default_scan(self):
        from app.cli_models import local_catalog

        return local_catalog(self.home, self.settings)

    # ------------------------------------------------------------------ models here
    def _show_models(self, catalog) -> None:
        from app.core.model_catalog import params_words

        self.list.clear()
        mem = catalog.memory
        gpu = (
            f"graphics card {mem.gpu_name} with {mem.gpu_free / 1e9:.1f} GB free"
            if mem.gpu_usable
            else "no graphics card Confidant can use (answers are computed on the processor)"
        )
        self.summary.setText(
            f"{len(catalog.models)} model{'s' if len(catalog.models) != 1 else ''} found; "
            f"{gpu}. Larger models answer better and need more memory."
        )
        current = self._current()
        for e in catalog.models:
            if e.problem:
                detail = e.problem
            else:
                template = "" if e.chat_template else " · no chat template (a standard one is used)"
                detail = (
                    f"{params_words(e.params)} {e.family}, {e.quant}, {_size(e.size_bytes)} · "
                    f"{e.fit_words()}{template}"
                )
            item = QListWidgetItem(f"{e.name}\n{detail}\nfrom {e.source}: {e.path}")
            item.setData(Qt.ItemDataRole.UserRole, "" if e.source == "built in" else str(e.path))
            if e.problem:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.list.addItem(item)
            if (current and str(e.path) == current) or (not current and e.source == "built in"):
                self.list.setCurrentItem(item)
        self.catalog = catalog
        self._update_buttons()

    def _current(self) -> str:
        return str(Path(self.settings.llm_path).expanduser()) if self.settings.llm_path else ""

    def _update_buttons(self) -> None:
        item = self.list.currentItem()
        locked = "llm_path" in self.settings.locked
        self.use_button.setEnabled(bool(item) and not locked)
        busy = self._cancel is not None
        self.download_button.setEnabled(
            self.downloads.currentItem() is not None and self._allowed and not busy and not locked
        )

    def accept(self) -> None:
        item = self.list.currentItem()
        if item is None:
            return
        self.chosen = item.data(Qt.ItemDataRole.UserRole)
        super().accept()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose the chat model", str(Path.home()), "Chat models (*.gguf);;All files (*)"
        )
        if path:
            self.chosen = path
            super().accept()

    # ------------------------------------------------------------------ downloads
    def _fill_downloads(self) -> None:
        from app.core.downloads import load_catalog, policy

        self._allowed, why = policy(self.settings)
        for e in load_catalog():
            item = QListWidgetItem(f"{e.name} · {_size(e.size)}\n{e.good_for}\n{e.licence}")
            item.setData(Qt.ItemDataRole.UserRole, e)
            if not e.sha256:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.downloads.addItem(item)
        self.download_note.setText(
            why
            or "Nothing is downloaded unless you press Download. The file is checked "
            "before it is used."
        )

    def _download(self) -> None:
        from app.core.cancel import CancelToken
        from app.core.downloads import DownloadError, download

        item = self.downloads.currentItem()
        if item is None:
            return
        entry = item.data(Qt.ItemDataRole.UserRole)
        self._cancel = CancelToken()
        token = self._cancel
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.show()
        self.stop_button.show()
        self._update_buttons()

        def work() -> None:
            try:
                path = download(
                    entry,
                    self.home,
                    self.settings,
                    progress=lambda d, t: self._relay.progress.emit(
                        int(d * 1000 / t) if t else 0, 1000
                    ),
                    cancel=token,
                )
                self._relay.downloaded.emit(path, "")
            except DownloadError as exc:
                self._relay.downloaded.emit(None, str(exc))
            except Exception as exc:  # Stop (Cancelled) or the system: said, never a crash
                from app.core.cancel import Cancelled

                said = (
                    "Download stopped; it resumes where it was."
                    if isinstance(exc, Cancelled)
                    else f"The download failed ({exc})."
                )
                self._relay.downloaded.emit(None, said)

        threading.Thread(target=work, daemon=True).start()

    def _show_progress(self, value: int, maximum: int) -> None:
        self.bar.setValue(value)

    def _stop(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def _download_done(self, path, error: str) -> None:
        self._cancel = None
        self.stop_button.hide()
        self.bar.hide()
        self._update_buttons()
        if error:
            self.download_note.setText(error)
            return
        self.chosen = str(path)
        super().accept()

    def reject(self) -> None:
        self._stop()
        super().reject()


def offer_real_model(window) -> None:
    """Once, at start: with only the built-in model, say plainly that answers will be weak and
    open the picker (a model chosen there is saved as the chat model)."""
    services = window.services
    settings = services.settings
    if settings.llm_path or "llm_path" in settings.locked:
        return
    history = services.history
    if history.get_state(NOTICE_KEY):
        return
    history.set_state(NOTICE_KEY, "1")
    # A note in the window, not a dialog: nothing waits on it, and the picker is one click.
    window.chat.show_notice(WEAK_MODEL_NOTICE, "Choose a model…")
    window.chat.notice_clicked.connect(window.open_model_picker)


def open_picker(window) -> None:
    """The picker as a window-modal dialog; a model chosen there becomes the chat model."""
    picker = ModelPicker(window.services.settings, window.services.home, window)

    def chosen() -> None:
        if picker.chosen:
            window.apply_settings(window.services.settings.with_changes(llm_path=picker.chosen))

    picker.accepted.connect(chosen)
    picker.open()
