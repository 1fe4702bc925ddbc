"""What Confidant's child processes (the model's, Chroma's) share: errors that cross the pipe,
and stopping one that does not leave when asked."""

from __future__ import annotations

import pickle


def portable(exc: BaseException) -> BaseException:
    """The exception itself if it survives pickling, else a RuntimeError with its message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def reap(proc, wait_s: float) -> None:
    """Give a child `wait_s` to end, then kill it."""
    proc.join(wait_s)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
