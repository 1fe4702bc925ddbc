"""Shared plumbing for the loaders: opening files, plain messages, and the exception guard."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from app.core.documents.base import (
    CorruptDocument,
    DocumentError,
    EmptyDocument,
    Page,
    UnreadableFile,
)


def quoted(path: str | os.PathLike[str]) -> str:
    """The file's base name in quotes, as every message shows it."""
    p = Path(path)
    return f"'{p.name or str(p)}'"


_FOLDER = "{name} is a folder, not a file. Add the documents inside it instead."


def _os_error(path: str | os.PathLike[str], exc: BaseException) -> UnreadableFile:
    name = quoted(path)
    if isinstance(exc, FileNotFoundError):
        return UnreadableFile(
            f"{name} could not be found. It may have been moved, renamed or deleted; "
            "check that it is still there and add it again."
        )
    if isinstance(exc, PermissionError):
        return UnreadableFile(
            f"{name} could not be opened: permission denied. Ask the file's owner for access, "
            "or copy it to a folder you can read and add the copy."
        )
    if isinstance(exc, IsADirectoryError):
        return UnreadableFile(_FOLDER.format(name=name))
    reason = getattr(exc, "strerror", None) or "the system refused to read it"
    return UnreadableFile(
        f"{name} could not be read ({reason}). Check that the drive or network share is "
        "connected and that the file still exists, then try again."
    )


def open_binary(path: str | os.PathLike[str]) -> tuple[BinaryIO, int]:
    """Open a regular, non-empty file for reading; return it with its size.

    Raises UnreadableFile (missing, no permission, a folder, a device) or EmptyDocument (0 bytes).
    """
    name = quoted(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError) as exc:
        raise _os_error(path, exc) from exc
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFile(_FOLDER.format(name=name))
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(
            f"{name} is not an ordinary file (it is a device, pipe or socket). "
            "Only saved documents can be added."
        )
    if st.st_size == 0:
        raise EmptyDocument(
            f"{name} is empty (0 bytes). There is nothing to read; check that it was saved "
            "or copied completely."
        )
    try:
        f = open(path, "rb")  # noqa: SIM115 - the caller owns it
    except (OSError, ValueError) as exc:
        raise _os_error(path, exc) from exc
    return f, st.st_size


def read_head(f: BinaryIO, path: str | os.PathLike[str], n: int) -> bytes:
    try:
        return f.read(n)
    except OSError as exc:
        raise _os_error(path, exc) from exc


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep third-party warnings from escaping (pytest turns some into errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def corrupt(path: str | os.PathLike[str], what: str, fix: str) -> CorruptDocument:
    return CorruptDocument(
        f"{quoted(path)} is damaged or not a valid {what}, so it could not be read. {fix}"
    )


# OS errors that mean the file could not be read, as opposed to a parser tripping over its bytes.
_ACCESS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError)
_IO_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EIO", "ENXIO", "ESTALE", "ENODEV", "ETIMEDOUT", "EREMOTEIO", "EHOSTDOWN")
    if hasattr(errno, name)
)

Loader = Callable[..., Iterator[Page]]


def guarded(what: str, fix: str) -> Callable[[Loader], Loader]:
    """Make a loader generator raise nothing but DocumentError subclasses.

    KeyboardInterrupt and SystemExit are BaseException and pass through untouched.
    """

    def decorate(loader: Loader) -> Loader:
        @functools.wraps(loader)
        def wrapper(path: str | os.PathLike[str]) -> Iterator[Page]:
            try:
                yield from loader(path)
            except DocumentError:
                raise
            except MemoryError as exc:
                raise CorruptDocument(
                    f"{quoted(path)} is too large or too complex to read with the memory "
                    "available. Split it into smaller files, or save it as plain text, "
                    "and add those."
                ) from exc
            except OSError as exc:
                if isinstance(exc, _ACCESS_ERRORS) or exc.errno in _IO_ERRNOS:
                    raise _os_error(path, exc) from exc
                # e.g. EINVAL from a parser seeking to an offset a damaged file points at
                raise corrupt(path, what, fix) from exc
            except Exception as exc:  # RecursionError and whatever a parser throws
                raise corrupt(path, what, fix) from exc

        return wrapper

    return decorate
