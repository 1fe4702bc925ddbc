"""One running Confidant per data directory.

Chroma is thread-safe but not process-safe, so a second process on the same library is refused.
The lock is an OS file lock (flock / LockFileEx through `filelock`): the OS drops it when the
process dies, so a lock left by a crash is never stale. Beside it we write who holds it, so the
refusal can name the running instance: `str()` of the refusal is for the command line (it names
the data directory and CONFIDANT_HOME, for IT and scripts), `plain` for people in the window.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout


class AlreadyRunning(Exception):
    def __init__(self, message: str, plain: str, role: str | None = None) -> None:
        super().__init__(message)
        self.plain = plain  # the same in words for the window's users: no paths, no variables
        self.role = role  # the holder's role ("window", "ingest", ...), None if unknown


class InstanceLock:
    def __init__(self, home: Path, role: str) -> None:
        self.home = Path(home)
        self.role = role
        self._lock = FileLock(str(self.home / "confidant.lock"), is_singleton=False, mode=0o600)
        self._info = self.home / "confidant.lock.json"

    def acquire(self, timeout: float = 0) -> InstanceLock:
        """Take the lock, waiting up to `timeout` seconds for its holder to let go."""
        try:
            self._lock.acquire(timeout=timeout, poll_interval=0.05)
        except Timeout:
            raise self._refusal() from None
        tmp = self._info.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.write_text(
            json.dumps(
                {"pid": os.getpid(), "role": self.role, "since": time.time(), "argv": sys.argv[:3]}
            )
        )
        os.replace(tmp, self._info)
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            with contextlib.suppress(OSError):
                self._info.unlink()
            self._lock.release()

    def __enter__(self) -> InstanceLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def _refusal(self) -> AlreadyRunning:
        role = None
        try:
            info = json.loads(self._info.read_text())
            role = info.get("role")
            who = "the Confidant window" if role == "window" else f"'confidant {role}'"
            since = time.strftime("%H:%M", time.localtime(info.get("since", 0)))
            holder = f"{who} (process {info.get('pid')}, started {since})"
        except (OSError, ValueError, AttributeError):
            holder = "another Confidant"
        message = (
            f"{holder} is already using the library in {self.home}. Close it first, or set "
            "CONFIDANT_HOME to use another library."
        )
        if role == "window":
            plain = (
                f"{holder[0].upper()}{holder[1:]} is already using the library and did not come "
                "to the front. Close it, then open Confidant again."
            )
        else:
            plain = (
                f"{holder[0].upper()}{holder[1:]} is already using the library. Open Confidant "
                "again when it has finished."
            )
        return AlreadyRunning(message, plain, role)
