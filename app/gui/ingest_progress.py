"""How far a stretch of ingestion has got, and how long it has left, counted in work (bytes,
and pages inside the file being read) rather than in files: one 2,400-page manual among five
memos is most of the work, and a count of files would call it nearly done at the start.

Plain Python (no Qt), fed the core's ingest events by the library controller.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from app.core.events import FileDone, FileProgress, FileStarted, IngestStarted

# No estimate before this much time and work: the first seconds load the embedder and read
# the first pages, and a guess from them swings wildly.
ESTIMATE_AFTER_S = 5.0
ESTIMATE_AFTER_FRACTION = 0.02


def duration(seconds: float, short: bool = False) -> str:
    if seconds < 60:
        return "under a minute" if short else "less than a minute"
    minutes = round(seconds / 60)
    if minutes >= 90:
        return f"about {round(minutes / 60, 1):g} hours"
    if short:
        return f"about {minutes} min"
    return f"about {minutes} minute{'s' if minutes != 1 else ''}"


@dataclass
class _Reading:
    size: int
    pages: int = 0
    page_total: int = 0

    def fraction(self) -> float:
        if self.page_total > 0:
            return min(self.pages / self.page_total, 1.0)
        return 0.0


@dataclass
class IngestProgress:
    """One stretch of ingestion: every run that starts while it lasts adds to it."""

    started: float = field(default_factory=time.monotonic)
    files_total: int = 0
    files_done: int = 0
    bytes_total: int = 0
    bytes_done: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    resuming: bool = False
    reading: dict[str, _Reading] = field(default_factory=dict)

    # ------------------------------------------------------------------ events in
    def update(self, event) -> None:
        if isinstance(event, IngestStarted):
            self.files_total += event.total
            self.bytes_total += event.bytes
        elif isinstance(event, FileStarted):
            self.reading[event.path] = _Reading(event.size)
        elif isinstance(event, FileProgress):
            r = self.reading.get(event.path)
            if r is not None:
                r.pages = max(r.pages, event.pages)
                r.page_total = event.page_total or r.page_total
        elif isinstance(event, FileDone):
            self.files_done += 1
            self.counts[event.status] = self.counts.get(event.status, 0) + 1
            r = self.reading.pop(event.path, None)
            self.bytes_done += r.size if r is not None else 0

    # ------------------------------------------------------------------ figures out
    def fraction(self) -> float:
        """The share of the work done, 0..1 (by bytes, with pages inside the open files)."""
        if self.bytes_total <= 0:
            return self.files_done / self.files_total if self.files_total else 0.0
        partial = sum(r.size * r.fraction() for r in self.reading.values())
        return min((self.bytes_done + partial) / self.bytes_total, 1.0)

    def seconds_left(self, now: float | None = None) -> float | None:
        """None until there is enough to go on."""
        elapsed = (time.monotonic() if now is None else now) - self.started
        done = self.fraction()
        if elapsed < ESTIMATE_AFTER_S or done < ESTIMATE_AFTER_FRACTION or done >= 1.0:
            return None
        return elapsed / done * (1.0 - done)

    def text(self, now: float | None = None) -> str:
        if self.files_total == 0:
            return "Looking for documents…"
        verb = "Resuming" if self.resuming else "Adding"
        n = self.files_total
        parts = [f"{verb} {min(self.files_done + 1, n)} of {n} document{'s' if n != 1 else ''}"]
        if self.files_done >= n:
            parts = [f"{verb}: finishing"]
        page = self._page_text()
        if page:
            parts.append(page)
        left = self.seconds_left(now)
        if left is not None:
            parts.append(f"{duration(left, short=True)} left")
        return " · ".join(parts)

    def _page_text(self) -> str:
        """Where the biggest file being read has got, when it has pages to count."""
        if not self.reading:
            return ""
        r = max(self.reading.values(), key=lambda r: r.size)
        if r.page_total > 1:
            return f"page {r.pages:,} of {r.page_total:,}"
        if r.pages > 1:
            return f"page {r.pages:,}"
        return ""

    def bar(self) -> tuple[int, int]:
        """(value, maximum) for a progress bar; (0, 0) is a busy bar."""
        if self.files_total == 0:
            return 0, 0
        return round(self.fraction() * 1000), 1000
