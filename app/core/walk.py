"""Expand what the user dropped (files and folders) into a list of candidate files.

Folders are walked recursively, following links but never looping (each real directory is
visited once) and never out of the folder that was chosen: a link whose target lies outside it
is passed over with a note, so adding a folder never adds what it merely points at (a link to
/etc/passwd). Hidden files and folders (.git, .DS_Store...) are passed over silently; a
Confidant data folder met on the way (the library's own files) is passed over with a note. A
subfolder that cannot be read (no permission, a name too long for the system) is named in a
problem of its own, never skipped without a word.
Names need not be valid UTF-8: paths stay as Python's surrogateescape str (see paths.py), and
messages show them with their undecodable bytes and control characters escaped.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.core.paths import display

# What makes a folder a Confidant data folder (config.data_dir): the library's database, an
# SQLite file whose schema (on its first page) makes the documents table. Indexing it would
# index the index, and the chats and settings beside it.
LIBRARY_DB = "library.sqlite3"
_SQLITE_HEADER = b"SQLite format 3\x00"
_SCHEMA_MARK = b"CREATE TABLE documents"


@dataclass(frozen=True)
class WalkProblem:
    path: str
    message: str
    # "failed": something the user asked for could not be read; "skipped": passed over on purpose
    status: str = "failed"


def is_data_dir(folder: Path) -> bool:
    """Whether `folder` holds a Confidant library (its database, with its schema: in the file,
    or, while a library is open and not checkpointed yet, in the first frames of its WAL)."""
    heads = []
    for name in (LIBRARY_DB, LIBRARY_DB + "-wal"):
        try:
            with open(folder / name, "rb") as fh:
                heads.append(fh.read(256 * 1024))
        except OSError:  # none there (or unreadable, as no library of ours is)
            heads.append(b"")
    return heads[0].startswith(_SQLITE_HEADER) and any(_SCHEMA_MARK in h for h in heads)


def expand(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[WalkProblem]]:
    """(files in a stable order, problems such as a missing path or an empty folder)."""
    files: list[Path] = []
    problems: list[WalkProblem] = []
    seen_files: set[Path] = set()
    seen_dirs: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser()
        try:
            exists = path.exists()
        except OSError as exc:  # a name too long for the system, or a folder on the way refused
            problems.append(WalkProblem(str(path), _cannot_open(path, exc)))
            continue
        if not exists:
            problems.append(
                WalkProblem(
                    str(path), f"'{display(path)}' does not exist. Check the path and try again."
                )
            )
            continue
        path = path.resolve()
        if path.is_dir():
            if is_data_dir(path):
                problems.append(WalkProblem(str(path), _data_dir_note(path), "skipped"))
                continue
            found, trouble = _walk(path, seen_dirs)
            problems.extend(trouble)
            if not found and not trouble:
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


def _data_dir_note(folder: Path) -> str:
    return (
        f"The folder '{display(folder)}' is a Confidant data folder (the library's own files), "
        "so it was not added."
    )


def _cannot_open(folder: Path, exc: OSError) -> str:
    name = display(folder)
    if isinstance(exc, PermissionError):
        why, fix = (
            "permission denied",
            "Ask its owner for access, or copy it to a folder you can read",
        )
    elif exc.errno == errno.ENAMETOOLONG:
        why = "its path is longer than the system allows"
        fix = "Move or rename it to a shorter path"
    else:
        why = exc.strerror or "the system refused to read it"
        fix = "Check that the drive or network share is connected"
    return (
        f"The folder '{name}' could not be read ({why}), so the files in it were not added. "
        f"{fix}, then add it again."
    )


def _cannot_read_file(path: Path, exc: OSError) -> str:
    why = (
        "its path is longer than the system allows"
        if exc.errno == errno.ENAMETOOLONG
        else exc.strerror or "the system refused it"
    )
    return (
        f"'{display(path)}' could not be opened ({why}), so it was not added. Move or rename "
        "it, then add it again."
    )


def _inside(target: Path, root: Path) -> bool:
    return target == root or target.is_relative_to(root)


def _outside_note(link: Path, target: Path, root: Path) -> str:
    return (
        f"'{display(link)}' is a link to '{display(target)}', outside the folder "
        f"'{display(root.name)}', so it was not followed. Add that file or folder itself if "
        "you want it in the library."
    )


def _walk(root: Path, seen_dirs: set[Path]) -> tuple[list[Path], list[WalkProblem]]:
    out: list[Path] = []
    problems: list[WalkProblem] = []

    def refused(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        problems.append(WalkProblem(str(where), _cannot_open(where, exc)))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=refused):
        here = Path(dirpath)
        try:
            real = here.resolve()
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, OSError):
                refused(exc)
            dirnames[:] = []
            continue
        if real in seen_dirs:  # a symlink loop or a folder reached twice
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        keep = []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            sub = here / d
            try:
                link, target = sub.is_symlink(), sub.resolve()
            except RuntimeError:  # a link loop: os.walk would meet it again
                continue
            except OSError as exc:  # e.g. a path longer than the system allows
                problems.append(WalkProblem(str(sub), _cannot_open(sub, exc)))
                continue
            if link and not _inside(target, root):
                problems.append(WalkProblem(str(sub), _outside_note(sub, target, root), "skipped"))
                continue
            if is_data_dir(target):
                problems.append(WalkProblem(str(sub), _data_dir_note(sub), "skipped"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            candidate = here / name
            try:
                target = candidate.resolve()
            except RuntimeError:  # a link loop on a file
                continue
            except OSError as exc:
                problems.append(WalkProblem(str(candidate), _cannot_read_file(candidate, exc)))
                continue
            if not _inside(target, root):
                problems.append(
                    WalkProblem(str(candidate), _outside_note(candidate, target, root), "skipped")
                )
                continue
            out.append(target)
    return out, problems
