"""Where Confidant's read-only resources lie, from the source tree and from a frozen bundle.

Frozen (PyInstaller one-folder), everything collected lives under `sys._MEIPASS` (the bundle's
`_internal/` folder); in the source tree, `resources/` sits next to the `app` package.
"""

from __future__ import annotations

import sys
from pathlib import Path


def is_frozen() -> bool:
    """True inside a PyInstaller bundle."""
    return bool(getattr(sys, "frozen", False))


def bundle_dir() -> Path:
    """The folder holding the collected files: `_MEIPASS` when frozen, else the repository root."""
    if is_frozen():
        meipass = getattr(sys, "_MEIPASS", None)
        return Path(meipass) if meipass else Path(sys.executable).resolve().parent
    return Path(__file__).resolve().parents[1]


def resources_dir() -> Path:
    """The `resources/` folder (icons, style sheets, the sample document, translations)."""
    return bundle_dir() / "resources"
