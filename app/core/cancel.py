"""Cooperative cancellation shared between a lane's worker and whoever asked for the work."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised inside long work when its CancelToken was set; callers turn it into a clean stop."""


class CancelToken:
    """A flag set from any thread and polled by the worker between batches, files and tokens."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


NEVER = CancelToken()
"""A token nobody cancels, for callers that have no Stop button (scripts, benchmarks)."""
