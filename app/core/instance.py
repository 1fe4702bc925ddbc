"""One running Confidant per data directory.

Chroma is thread-safe but not process-safe, so a second process on the same library is refused.
The lock is an OS file lock (flock / LockFileEx through `filelock`): the OS drops it when the
process dies, so a lock left by a crash is never stale. Beside it we write who holds it, so the
refusal can name the running instance.
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
    pass


class InstanceLock:
    def __init__(self, home: Path, role: str) -> None:
        self.home = Path(home)
        self.role = role
        self._lock = FileLock(str(self.home / "confidant.lock"), is_singleton=False, mode=0o600)
        self._info = self.home / "confidant.lock.json"

    def acquire(self) -> InstanceLock:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise AlreadyRunning(self._describe_holder()) from None
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

    def _describe_holder(self) -> str:
        try:
            info = json.loads(self._info.read_text())
            who = (
                "the Confidant window"
                if info.get("role") == "window"
                else f"'confidant {info.get('role')}'"
            )
            since = time.strftime("%H:%M", time.localtime(info.get("since", 0)))
            holder = f"{who} (process {info.get('pid')}, started {since})"
        except (OSError, ValueError):
            holder = "another Confidant"
        return (
            f"{holder} is already using the library in {self.home}. Close it first, or set "
            "CONFIDANT_HOME to use another library."
        )
