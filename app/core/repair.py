"""Rebuilding a damaged library from the documents' files (`confidant repair`, and the window's
"Rebuild the library").

The order makes every step safe to cut short (Ctrl-C, a crash, a closed window):
1. list the documents to rebuild (below), while the damaged files are still where they were;
2. queue that list (Ingestor.queue, ingest_queue.py), so whatever is not rebuilt yet is
   picked up by the next `confidant repair`, `confidant ingest` or start of the window;
3. move the library's files (library.sqlite3 and library/, both: they must agree, so they are
   rebuilt together) and a damaged chats.sqlite3 into one `damaged-YYYYmmdd-HHMMSS/` folder
   in the data directory: a rename, nothing is deleted and nothing is copied;
4. read the documents again into a new library, as `confidant ingest` would (a run that is
   stopped keeps what it added; the rest stays queued).
Settings are not touched. Chats are kept; a damaged chats file is set aside and a fresh one
started, and the result says so.

Where the list of documents comes from, best first:
- the documents table, when library.sqlite3 can still be read to its end: it is the library's
  own list (documents that failed or were skipped are tried again);
- otherwise the paths in Chroma's records (the first passage of each document carries its
  path), the ingest queue, and, when Chroma gives none (its store is lost too, or it was
  written before paths were recorded), the files the chats cite. A document removed after a
  chat cited it may then come back; one never cited and not in Chroma cannot be found.
Documents whose files are no longer on disk are listed as missing; they cannot be rebuilt.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.core.cancel import CancelToken
from app.core.events import IngestFinished
from app.core.ingest import Ingestor
from app.core.library import path_from_meta
from app.core.paths import from_sql
from app.core.status import DocStatus
from app.core.store_health import (
    CHATS_DB,
    CHROMA_DB,
    LIBRARY_DB,
    VECTOR_DIR,
    Damage,
    HealthReport,
    _connect,
    aside_folder,
    check,
    set_aside,
)

# Derived from the library: measured again for the new one (app/core/gate.py).
DERIVED = ("relevance-baseline.json",)


@dataclass(frozen=True)
class RepairStarted:
    """What was damaged, where it was kept, and what will be read again."""

    damaged: tuple[Damage, ...]
    kept_in: Path | None
    paths: tuple[str, ...]
    missing: tuple[str, ...]
    chats_reset: bool
    source: str  # where the list of documents came from, in words


@dataclass(frozen=True)
class RepairFinished:
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    cancelled: bool = False
    kept_in: Path | None = None
    missing: tuple[str, ...] = ()


def find_documents(home: Path, queued: list[str]) -> tuple[list[str], str]:
    """The paths of the library's documents (files present or not) and, in words, where the
    list came from (see the module's docstring); `queued`: the requests not finished yet."""
    home = Path(home)
    table, complete = _documents_table(home / LIBRARY_DB)
    if complete:
        return _unique(table + queued), "the library's documents table"
    stored = _chroma_paths(home / VECTOR_DIR / CHROMA_DB)
    found = _unique(table + stored + queued)
    sources = [
        name
        for name, got in (
            ("what could be read of the documents table", table),
            ("the vector store's records", stored),
            ("the list of files waiting to be added", queued),
        )
        if got
    ]
    if not stored:
        cited = _cited_paths(home / CHATS_DB)
        if cited:
            found = _unique(found + cited)
            sources.append("the files your chats cite")
    return found, ", ".join(sources) or "nothing (no list of documents could be read)"


def repair(
    home: Path,
    ingestor: Ingestor,
    cancel: CancelToken,
    report: HealthReport | None = None,
) -> Iterator:
    """Rebuild what `report` (default: check(home)) finds damaged; then finish the queue.
    Yields RepairStarted, the ingestor's events, then RepairFinished. The caller must have
    closed the library and the chats (their files are moved), and gives an `ingestor` that
    opens its library on first use (after the move: Ingestor's `library` as a function)."""
    started = time.perf_counter()
    home = Path(home)
    report = report if report is not None else check(home)
    kept_in, missing, paths, source = None, [], [], ""
    if report.library:
        found, source = find_documents(home, ingestor.pending())
        paths = [p for p in found if os.path.exists(p)]
        missing = [p for p in found if not os.path.exists(p)]
        ingestor.queue(paths)  # before anything moves: a stop from here on loses nothing
    if report.damages:
        kept_in = aside_folder(home)
        moved: list[Path] = []
        if report.library:
            moved += [home / LIBRARY_DB, home / VECTOR_DIR, *(home / d for d in DERIVED)]
        if report.chats:
            moved.append(home / CHATS_DB)
        set_aside(moved, kept_in)
    todo = [p for p in ingestor.pending() if os.path.exists(p)]
    yield RepairStarted(
        tuple(report.damages),
        kept_in,
        tuple(todo),
        tuple(missing),
        bool(report.chats),
        source,
    )
    finished = None
    if todo:
        for event in ingestor.run(todo, cancel):
            if isinstance(event, IngestFinished):
                finished = event
            yield event
    yield RepairFinished(
        counts=dict(finished.counts) if finished else {},
        seconds=time.perf_counter() - started,
        cancelled=cancel.cancelled,
        kept_in=kept_in,
        missing=tuple(missing),
    )


# --------------------------------------------------------------------------- the sources
def _unique(paths: list[str]) -> list[str]:
    return [p for p in dict.fromkeys(paths) if p and os.path.isabs(p)]


def _documents_table(path: Path) -> tuple[list[str], bool]:
    """Paths read from the documents table, and whether it was read to its end."""
    if not path.exists() or path.stat().st_size == 0:
        return [], False
    paths: list[str] = []
    try:
        db = _connect(path)
    except sqlite3.Error:
        return [], False
    try:
        db.execute("PRAGMA query_only=1")
        for value, status in db.execute("SELECT path, status FROM documents ORDER BY id"):
            if status != DocStatus.REMOVING:
                paths.append(from_sql(value))
        ok = db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        return paths, ok
    except (sqlite3.Error, ValueError):
        return paths, False
    finally:
        db.close()


def _salvaged_rows(path: Path, sql: str) -> Iterator[tuple]:
    """The rows of `sql` in a database that may be damaged: as many as can be read, none when
    it is missing or cannot be opened."""
    if not path.exists():
        return
    try:
        db = _connect(path)
    except sqlite3.Error:
        return
    try:
        yield from db.execute(sql)
    except sqlite3.Error:
        return
    finally:
        db.close()


def _chroma_paths(path: Path) -> list[str]:
    paths: list[str] = []
    sql = "SELECT string_value FROM embedding_metadata WHERE key='path' ORDER BY id"
    for (value,) in _salvaged_rows(path, sql):
        if isinstance(value, str):
            try:
                paths.append(path_from_meta(value))
            except ValueError:
                break
    return paths


def _cited_paths(path: Path) -> list[str]:
    paths: list[str] = []
    for (sources,) in _salvaged_rows(path, "SELECT sources FROM messages ORDER BY id"):
        try:
            for source in json.loads(sources):
                if isinstance(source, dict) and isinstance(source.get("path"), str):
                    paths.append(source["path"])
        except ValueError:
            continue
    return paths
