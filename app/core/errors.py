"""Plain words for an error nobody expected, shared by the window and the CLI."""

from __future__ import annotations


def describe(exc: BaseException) -> str:
    """One sentence for an exception nobody expected (the log keeps the traceback)."""
    if isinstance(exc, OSError) and exc.errno == 28:
        return "The disk is full. Free some space and try again."
    if isinstance(exc, MemoryError):
        return "The computer ran out of memory. Close other programs and try again."
    text = str(exc).strip() or type(exc).__name__
    return text if text.endswith(".") else text + "."
