"""Expand what the user dropped (files and folders) into a list of candidate files.

Folders are walked recursively, following links but never looping (each real directory is
visited once). Hidden files and folders (.git, .DS_Store...) are passed over silently.
Names need not be valid UTF-8: paths stay as Python's surrogateescape str (see paths.py), and
messages show them with their undecodable bytes escaped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.core.paths import display


@dataclass(frozen=True)
class WalkProblem:
    path: str
    message: str


def expand(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[WalkProblem]]:
    """(files in a stable order, problems such as a missing path or an empty folder)."""
    files: list[Path] = []
    problems: list[WalkProblem] = []
    seen_files: set[Path] = set()
    seen_dirs: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            problems.append(
                WalkProblem(
                    str(path), f"'{display(path)}' does not exist. Check the path and try again."
                )
            )
            continue
        path = path.resolve()
        if path.is_dir():
            found = _walk(path, seen_dirs)
            if not found:
                problems.append(
                    WalkProblem(
                        str(path), f"The folder '{display(path.name)}' has no files to add."
                    )
                )
            for f in found:
                if f not in seen_files:
                    seen_files.add(f)
                    files.append(f)
        elif path not in seen_files:
            seen_files.add(path)
            files.append(path)
    return files, problems


def _walk(root: Path, seen_dirs: set[Path]) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=lambda e: None):
        real = Path(dirpath).resolve()
        if real in seen_dirs:  # a symlink loop or a folder reached twice
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                candidate = Path(dirpath) / name
                try:
                    out.append(candidate.resolve())
                except (OSError, RuntimeError):  # a link loop on a file
                    continue
    return out
