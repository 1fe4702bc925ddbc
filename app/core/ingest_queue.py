"""The files and folders the user asked to add whose ingestion has not finished, kept on disk.

Closing the window (or a crash, or a power cut) while documents are being added must not lose
the request: the next start picks up where it stopped. A path goes in when it is accepted (a
drop, a CLI argument) and comes out when the run that read it has finished, or when the user
presses Stop. It is a small JSON list in the data dir, replaced atomically on every change,
so the window can write it from its own thread without waiting on the library.

Paths are stored losslessly: a name that is not valid UTF-8 (its undecodable bytes held as
surrogates, see paths.py) is written with JSON's \\u escapes, which read back to the same str.

A path asked for again while queued is kept once: the run that reads it answers both requests
(runs killed before finishing do not pile up copies).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "ingest-queue.json"


class IngestQueue:
    def __init__(self, home: Path) -> None:
        self.file = Path(home) / FILE_NAME
        self._lock = threading.Lock()
        self._paths = self._read()

    def paths(self) -> list[str]:
        """The queued paths, oldest request first."""
        with self._lock:
            return list(self._paths)

    def add(self, paths: Iterable[str | os.PathLike]) -> None:
        with self._lock:
            new = [p for p in dict.fromkeys(str(p) for p in paths) if p not in self._paths]
            if new:
                self._paths.extend(new)
                self._write()

    def discard(self, paths: Iterable[str | os.PathLike]) -> None:
        """Take `paths` out (paths not queued are ignored)."""
        with self._lock:
            gone = {str(p) for p in paths}
            kept = [p for p in self._paths if p not in gone]
            if len(kept) != len(self._paths):
                self._paths = kept
                self._write()

    def clear(self) -> None:
        with self._lock:
            if self._paths:
                self._paths = []
                self._write()

    def _read(self) -> list[str]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:  # unreadable or damaged: start empty, say why
            log.warning("ignoring the ingest queue %s: %s", self.file, exc)
            return []
        if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
            log.warning("ignoring the ingest queue %s: not a list of paths", self.file)
            return []
        return data

    def _write(self) -> None:
        """Replace the file; if that fails (a full disk), the queue still works in memory and
        only the resume after a restart is lost, which is no reason to stop adding files."""
        tmp = self.file.with_suffix(".json.tmp")
        try:
            # ASCII with \u escapes: a path holding undecodable bytes (lone surrogates) has no
            # UTF-8 form, and the escapes read back to the very same str.
            data = json.dumps(self._paths, ensure_ascii=True).encode("ascii")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.file)
        except (OSError, ValueError) as exc:
            log.warning("could not save the ingest queue %s: %s", self.file, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
