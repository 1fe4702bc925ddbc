"""Help > About Confidant: the version, where this person's data and logs live, the models in
use, and the licences of what Confidant is built from (read from the installed packages, so the
list stays true as they change)."""

from __future__ import annotations

import html
from importlib import metadata
from pathlib import Path

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
)

from app.gui.chat_view import LOCAL

# What Confidant is made of (distribution names), in the order a reader cares about.
COMPONENTS = (
    "PySide6-Essentials",
    "llama_cpp_python",
    "chromadb",
    "sentence-transformers",
    "torch",
    "transformers",
    "pypdfium2",
    "pypdf",
    "python-docx",
    "selectolax",
    "markdown-it-py",
    "platformdirs",
)
MODEL_LICENCES = (
    ("SmolLM2-135M-Instruct (the embedded chat model)", "Apache-2.0"),
    ("all-MiniLM-L6-v2 (the embedded search model)", "Apache-2.0"),
)


def version() -> str:
    try:
        return metadata.version("confidant")
    except metadata.PackageNotFoundError:
        return "development"


def licence_of(dist: str) -> tuple[str, str] | None:
    """(version, licence) of an installed distribution, or None when it is not installed."""
    try:
        meta = metadata.metadata(dist)
    except metadata.PackageNotFoundError:
        return None
    text = meta.get("License-Expression") or ""
    if not text:
        classifiers = [c for c in meta.get_all("Classifier") or () if c.startswith("License ::")]
        text = classifiers[0].rsplit("::", 1)[-1].strip() if classifiers else ""
    if not text:
        lines = (meta.get("License") or "").strip().splitlines()
        text = lines[0] if lines else "see the package"
    if len(text) > 60:
        text = text[:57] + "…"
    return meta.get("Version", "?"), text


def about_html(home: Path, model: str, embedder: str, where: str = LOCAL) -> str:
    rows = []
    for dist in COMPONENTS:
        found = licence_of(dist)
        if found is not None:
            rows.append((f"{dist} {found[0]}", found[1]))
    rows += MODEL_LICENCES
    table = "".join(
        f"<tr><td>{html.escape(a)}</td><td style='padding-left:12px'>{html.escape(b)}</td></tr>"
        for a, b in rows
    )
    return (
        f"<h2>Confidant {html.escape(version())}</h2>"
        f"<p>Private chat with your documents. {html.escape(where)} No account, no "
        "telemetry.</p>"
        f"<p><b>Your data</b> (library, chats, settings): {html.escape(str(home))}<br>"
        f"<b>Logs</b>: {html.escape(str(home / 'logs'))}<br>"
        f"<b>Chat model</b>: {html.escape(model)}<br>"
        f"<b>Search model</b>: {html.escape(embedder)}</p>"
        "<p><b>Built with</b> (name, version, licence)</p>"
        f"<table>{table}</table>"
    )


class AboutDialog(QDialog):
    def __init__(
        self, home: Path, model: str, embedder: str, parent=None, where: str = LOCAL
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("About Confidant")
        self.resize(560, 520)
        self.home = Path(home)
        layout = QVBoxLayout(self)
        self.text = QTextBrowser()
        self.text.setAccessibleName("About Confidant")
        self.text.setOpenExternalLinks(False)
        self.text.setHtml(about_html(self.home, model, embedder, where))
        layout.addWidget(self.text, 1)
        note = QLabel("Send the log file to your IT team when something goes wrong.")
        note.setObjectName("mutedLabel")
        note.setWordWrap(True)
        layout.addWidget(note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.open_data = QPushButton("Open data folder")
        self.open_data.setAccessibleName("Open the folder with your data and logs")
        self.open_data.clicked.connect(self._open_folder)
        buttons.addButton(self.open_data, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.Close).setDefault(True)
        layout.addWidget(buttons)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

    def _open_folder(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.home)))
