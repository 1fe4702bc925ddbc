"""The note across the top of the window when a team server (docs/team-setup.md) cannot be
reached: which server, what it said, and what to do (check the address in Settings, or ask IT
when IT set it). It holds nothing up: the window works on around it, and it goes by itself once
the server answers again (the window clears it on the next snapshot or model load)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

TITLES = {
    "library": "The team library is unavailable.",
    "model": "The team model server is unavailable.",
}
ADDRESS_KEYS = {"library": "library_server", "model": "llm_server"}


def advice(which: str, locked: frozenset[str] | set[str]) -> str:
    """What to do about a server that cannot be reached."""
    if ADDRESS_KEYS[which] in locked:
        return "Your IT department set this address: ask them whether the server is running."
    return (
        "Check the address in Settings (Advanced, Team servers), or ask your IT department "
        "whether the server is running."
    )


class ServerNotice(QFrame):
    settings_requested = Signal()
    retry_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("serverNotice")
        self.setStyleSheet(
            "#serverNotice { background: palette(alternate-base); "
            "border-bottom: 1px solid palette(midlight); }"
        )
        self.down: dict[str, str] = {}  # which server -> its sentence, in the order they failed
        row = QHBoxLayout(self)
        row.setContentsMargins(14, 10, 14, 10)
        row.setSpacing(12)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)  # a server's words are not markup
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setAccessibleName("Team server notice")
        row.addWidget(self.label, 1)
        buttons = QVBoxLayout()
        self.settings_button = QPushButton("Settings…")
        self.settings_button.setAccessibleName("Open Settings to check the team server address")
        self.settings_button.clicked.connect(self.settings_requested)
        self.retry_button = QPushButton("Try again")
        self.retry_button.setAccessibleName("Try to reach the team servers again")
        self.retry_button.clicked.connect(self.retry_requested)
        buttons.addWidget(self.settings_button)
        buttons.addWidget(self.retry_button)
        row.addLayout(buttons)
        self.hide()

    def show_down(self, which: str, message: str, locked: frozenset[str] | set[str]) -> None:
        self.down[which] = f"{TITLES[which]} {message} {advice(which, locked)}"
        self._update()

    def clear(self, which: str | None = None) -> None:
        if which is None:
            self.down.clear()
        else:
            self.down.pop(which, None)
        self._update()

    def _update(self) -> None:
        self.label.setText("\n\n".join(self.down.values()))
        self.setVisible(bool(self.down))
