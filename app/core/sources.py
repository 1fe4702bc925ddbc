"""Sources: folders Confidant remembers and keeps in sync with the library.

A folder given to Confidant (dropped, or `confidant ingest DIR`) is remembered in the library's
`sources` table. `reconcile()` brings the library in line with what the folders hold now:
new files are added, changed ones replaced, deleted ones removed, and renamed or moved ones
re-pointed (the same bytes under a new name are not read or embedded again).

It is cheap when nothing changed: a file whose size and mtime are those its document was read
at is not opened; only the others are hashed (by the ingestor, which skips an unchanged hash).

Nothing is removed because of a transient state. A folder that cannot be reached (its drive
unplugged, its share down, its mount point empty, or it cannot be listed) is marked offline and
its documents kept; a folder deleted from a disk that is still there is marked missing, and its
documents go only when the caller says so (`prune`, after asking the user). Inside a folder
that is online, a subfolder that cannot be listed keeps its documents too. A file that changes
while it is read is read again (ingest.py); the watcher (watcher.py) brings it back once it
settles otherwise.

Crashes: every step is one of the library's crash-safe operations (a version made live in one
transaction, a removal marked first, a re-point in one statement), and each sync works from
the disk and the table as they are, so a sync killed at any point is finished by the next one.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from app.core.cancel import CancelToken
from app.core.documents import DocumentError, reader_revision, sniff
from app.core.events import FileDone, IngestFinished
from app.core.ingest import Ingestor, file_hash, version_of
from app.core.library import DocumentRow, Library, SourceRow
from app.core.paths import display
from app.core.status import DocStatus

log = logging.getLogger(__name__)

ONLINE, OFFLINE, MISSING, REMOVING = "online", "offline", "missing", "removing"


# ----------------------------------------------------------------------------- events
@dataclass(frozen=True)
class SyncStarted:
    sources: tuple[str, ...]


@dataclass(frozen=True)
class FileMoved:
    """A document's file was renamed or moved: the document follows it, nothing re-read."""

    path: str
    old_path: str
    chunks: int = 0
    status: str = "moved"


@dataclass(frozen=True)
class SourceChecked:
    """One folder's state after its scan (before its new files are read)."""

    path: str
    state: str  # online | offline | missing
    files: int  # documents under it
    message: str | None = None


@dataclass(frozen=True)
class SyncFinished:
    counts: dict[str, int]
    seconds: float
    scan_seconds: float
    sources: tuple[SourceRow, ...]
    cancelled: bool = False


# ----------------------------------------------------------------------------- registry
def remember(library: Library, paths: Iterable[str | os.PathLike]) -> list[str]:
    """Remember the folders among `paths` as sources (files stay single documents); returns
    the folders newly remembered."""
    added = []
    for raw in paths:
        path = os.path.realpath(os.path.expanduser(os.fspath(raw)))
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and library.add_source(path, st.st_dev):
            added.append(path)
    return added


def find_source(library: Library, path: str | os.PathLike) -> SourceRow | None:
    """The source named `path` (as given, or its real path)."""
    raw = os.path.abspath(os.path.expanduser(os.fspath(path)))
    wanted = {raw, os.path.realpath(raw), raw.rstrip(os.sep) or os.sep}
    return next((s for s in library.sources() if s.path in wanted), None)


def forget(library: Library, path: str) -> Iterator[FileDone]:
    """Forget a source and remove its documents (those under another source stay). Marked
    first: a crash midway is finished by the next reconcile."""
    library.update_source(path, state=REMOVING)
    yield from _finish_forget(library, path)


def _finish_forget(library: Library, path: str) -> Iterator[FileDone]:
    others = [s.path for s in library.sources() if s.path != path and s.state != REMOVING]
    for doc in library.documents():
        if _inside(doc.path, path) and not any(_inside(doc.path, o) for o in others):
            library.remove(doc.path)
            yield FileDone(doc.path, "removed")  # type: ignore[arg-type]
    library.forget_source(path)


def set_paused(library: Library, path: str, paused: bool) -> None:
    library.update_source(path, paused=int(paused))


# ----------------------------------------------------------------------------- scanning
@dataclass
class Scan:
    files: dict[str, tuple[int, float]] = field(default_factory=dict)  # path -> size, mtime
    unreadable: list[str] = field(default_factory=list)  # folders that could not be listed


def scan(root: str) -> Scan:
    """Regular files under `root` with their size and mtime, by the rules of walk.py (hidden
    names passed over, links followed, each real folder once, paths resolved). Unlike
    walk.expand it says which folders could not be listed: their documents are not gone."""
    out = Scan()
    seen: set[tuple[int, int]] = set()
    stack = [os.path.realpath(root)]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            entries = list(os.scandir(folder))
        except OSError:
            out.unreadable.append(folder)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                link = entry.is_symlink()
                est = entry.stat()  # follows links
            except OSError:  # a dangling link, or gone since it was listed
                continue
            path = os.path.realpath(entry.path) if link else entry.path
            if stat.S_ISDIR(est.st_mode):
                stack.append(path)
            elif stat.S_ISREG(est.st_mode):
                out.files[path] = (est.st_size, est.st_mtime)
    return out


def probe(source: SourceRow) -> tuple[str, str | None, int | None]:
    """(state, why, device) of a source folder now."""
    path = source.path
    name = display(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        ancestor = _nearest_existing(path)
        try:
            device = os.stat(ancestor).st_dev if ancestor else None
        except OSError:
            device = None
        if source.device is not None and device != source.device:
            return (
                OFFLINE,
                f"'{name}' cannot be reached: its drive or network share is not connected. "
                "Its documents are kept.",
                None,
            )
        return (
            MISSING,
            f"'{name}' is not there any more. Its documents are kept until you confirm "
            "(confidant sync --prune, or remove the folder from the library).",
            None,
        )
    except OSError as exc:
        return OFFLINE, f"'{name}' cannot be reached ({exc.strerror or exc}).", None
    if not stat.S_ISDIR(st.st_mode):
        return MISSING, f"'{name}' is not a folder any more. Its documents are kept.", None
    try:
        with os.scandir(path) as it:
            empty = next(it, None) is None
    except OSError as exc:
        return (
            OFFLINE,
            f"'{name}' cannot be read ({exc.strerror or exc}). Its documents are kept.",
            None,
        )
    if source.device is not None and st.st_dev != source.device and empty:
        # What an unplugged drive leaves behind: its empty mount point, another file system.
        return (
            OFFLINE,
            f"'{name}' is empty and on another disk than before: its drive is probably not "
            "connected. Its documents are kept.",
            None,
        )
    return ONLINE, None, st.st_dev


def _nearest_existing(path: str) -> str | None:
    parent = os.path.dirname(path)
    while parent and parent != path:
        if os.path.lexists(parent):
            return parent
        path, parent = parent, os.path.dirname(parent)
    return None


def _inside(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


# ----------------------------------------------------------------------------- reconcile
def unchanged(doc: DocumentRow, size: int, mtime: float) -> bool:
    """Whether the file can be taken as the one its document was read from without opening
    it. Failed files are tried again (the reason may have gone); skipped ones only when their
    size or mtime changed."""
    if (doc.size, doc.mtime) != (size, mtime) or doc.pending:
        return False
    return (doc.status == DocStatus.READY and bool(doc.hash)) or doc.status == DocStatus.SKIPPED


@dataclass
class _Plan:
    read: list[str] = field(default_factory=list)
    remove: list[DocumentRow] = field(default_factory=list)
    online: list[tuple[str, int | None]] = field(default_factory=list)  # path, device


def reconcile(
    library: Library,
    ingestor: Ingestor,
    cancel: CancelToken,
    roots: Iterable[str] | None = None,
    prune: bool = False,
) -> Iterator[object]:
    """Bring the library in line with its source folders (all, or those in `roots`); yields
    SyncStarted, SourceChecked, FileDone (unchanged, removed), FileMoved, the ingestor's events
    for the files read, and SyncFinished. `prune`: documents of folders that are missing go
    too (offline folders keep theirs whatever is asked)."""
    started = time.perf_counter()
    library.recover()
    for s in library.sources():
        if s.state == REMOVING:  # a `sources remove` cut short
            yield from _finish_forget(library, s.path)
    wanted = {os.path.realpath(r) for r in roots} if roots is not None else None
    sources = [s for s in library.sources() if wanted is None or s.path in wanted]
    counts = dict.fromkeys(
        ("added", "unchanged", "replaced", "moved", "removed", "skipped", "failed", "cancelled"),
        0,
    )
    yield SyncStarted(tuple(s.path for s in sources))
    documents = library.documents()
    plan = _Plan()
    for source in sources:
        if cancel.cancelled:
            break
        under = {
            d.path: d
            for d in documents
            if _inside(d.path, source.path) and d.status != DocStatus.REMOVING
        }
        state, message, device = probe(source)
        if state != ONLINE:
            if state == MISSING and prune:
                plan.remove.extend(under.values())
                library.update_source(source.path, state=REMOVING)
                yield SourceChecked(source.path, state, 0, "Forgotten, with its documents.")
                continue
            library.update_source(source.path, state=state, message=message)
            yield SourceChecked(source.path, state, len(under), message)
            continue
        found = scan(source.path)
        if under and not found.files and not found.unreadable and not prune:
            # Every file gone at once looks like a folder emptied by accident, or a share
            # that shows nothing for a while: confirmed like a deleted folder.
            message = (
                f"'{display(source.path)}' is empty now. Its documents are kept until you "
                "confirm (confidant sync --prune, or remove the folder from the library)."
            )
            library.update_source(source.path, state=MISSING, message=message)
            yield SourceChecked(source.path, MISSING, len(under), message)
            continue
        new: list[str] = []
        for path, (size, mtime) in found.files.items():
            doc = under.pop(path, None)
            if doc is None:
                new.append(path)
            elif unchanged(doc, size, mtime):
                counts["unchanged"] += 1
                yield FileDone(path, "unchanged", chunks=doc.chunks, pages=doc.pages)
            else:
                plan.read.append(path)
        # What is left of `under` is not on disk, unless it is in a folder that cannot be read.
        gone = [d for d in under.values() if not any(_inside(d.path, u) for u in found.unreadable)]
        for doc, path in _moves(gone, new, found.files, ingestor):
            size, mtime = found.files[path]
            library.move_document(doc.id, path, size, mtime)
            counts["moved"] += 1
            yield FileMoved(path, doc.path, doc.chunks)
            gone.remove(doc)
            new.remove(path)
        plan.read.extend(new)
        plan.remove.extend(gone)
        note = None
        if found.unreadable:
            n = len(found.unreadable)
            note = (
                f"{n} folder{'s' if n != 1 else ''} inside could not be read "
                f"(first: '{display(found.unreadable[0])}'); their documents are kept."
            )
        files = len(found.files) - len(new)
        library.update_source(source.path, state=ONLINE, device=device, message=note)
        plan.online.append((source.path, device))
        yield SourceChecked(source.path, ONLINE, files, note)
    scan_seconds = time.perf_counter() - started
    if plan.read and not cancel.cancelled:
        for event in ingestor.run(plan.read, cancel):
            if isinstance(event, FileDone) and event.status in counts:
                counts[event.status] += 1
            if not isinstance(event, IngestFinished):
                yield event
    if not cancel.cancelled:
        for doc in plan.remove:
            library.remove(doc.path)
            counts["removed"] += 1
            yield FileDone(doc.path, "removed")  # type: ignore[arg-type]
        for s in library.sources():
            if s.state == REMOVING:  # pruned: its documents went above
                library.forget_source(s.path)
        now = time.time()
        docs = library.documents()
        for path, _device in plan.online:
            files = sum(1 for d in docs if _inside(d.path, path))
            library.update_source(path, last_sync=now, files=files)
    yield SyncFinished(
        counts,
        time.perf_counter() - started,
        scan_seconds,
        tuple(library.sources()),
        cancel.cancelled,
    )


def _moves(
    gone: list[DocumentRow],
    new: list[str],
    stats: dict[str, tuple[int, float]],
    ingestor: Ingestor,
) -> list[tuple[DocumentRow, str]]:
    """Pairs (document whose file is gone, new file with the very same version). Only new
    files of the size of a gone document are hashed."""
    by_size: dict[int, list[DocumentRow]] = {}
    for d in gone:
        if d.hash and d.status == DocStatus.READY:
            by_size.setdefault(d.size, []).append(d)
    if not by_size:
        return []
    opts = ingestor.options
    pairs = []
    for path in new:
        candidates = by_size.get(stats[path][0])
        if not candidates:
            continue
        try:
            kind = sniff(path)
            version = version_of(
                file_hash(path),
                opts.chunk_tokens,
                opts.chunk_overlap,
                reader_revision(path, kind),
            )
        except (DocumentError, OSError):
            continue
        for d in candidates:
            if d.hash == version:
                candidates.remove(d)
                pairs.append((d, path))
                break
    return pairs
