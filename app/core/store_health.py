"""Whether the library's stores can be trusted, checked when they are opened, and plain words
for the two ways a store fails underneath us: damage and a full disk.

The library is three stores that must agree (library.py): `library.sqlite3` (the documents
table and the keyword index), `library/` (Chroma: `chroma.sqlite3` and one folder of HNSW files
per vector segment) and, beside them, `chats.sqlite3`. Left alone, a damaged store did harm:
a missing or emptied `library.sqlite3` opened as an empty library whose every vector was then
deleted as a stray; a missing Chroma store made search fall back to keywords and ingest call
every file "unchanged"; a damaged `chroma.sqlite3` made Chroma's Rust core panic; a 0-byte
`index_metadata.pickle` (Chroma rewrites it in place, so a full disk can leave it empty) failed
every search. So before anything is read or written, check_library() looks at the files
without starting Chroma, and Library refuses to open a damaged library (LibraryDamaged), naming
what is damaged, where, and the way out: `confidant repair` (repair.py) sets the damaged files
aside and rebuilds the library from the documents' files.

The checks and what they cost (quick_check reads every page of the file; bench/NOTES.md has
its time on a large library):
- library.sqlite3: PRAGMA quick_check; its tables present. Missing, empty or without tables
  while Chroma holds vectors: damaged (never "a new library").
- library/: chroma.sqlite3 present when there are live passages; quick_check; the collection
  and its segments present; every live passage's id among Chroma's records; each vector
  segment that Chroma says it persisted has its HNSW files and a readable
  index_metadata.pickle (read with an unpickler that builds nothing but plain data).
- chats.sqlite3 (check_chats): quick_check and its tables; history.py sets a damaged one aside.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.core.status import DocStatus

LIBRARY_DB = "library.sqlite3"
VECTOR_DIR = "library"
CHROMA_DB = "chroma.sqlite3"
CHATS_DB = "chats.sqlite3"
COLLECTION = "chunks"
PICKLE = "index_metadata.pickle"
HNSW_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
LIBRARY_TABLES = ("meta", "documents", "chunks", "chunks_fts")
CHATS_TABLES = ("conversations", "messages")
ASIDE_PREFIX = "damaged-"

DISK_RESERVE = 64 * 1024 * 1024
"""Free bytes kept in hand before each write to the vector store (plus twice Chroma's
index_metadata.pickle files, which Chroma rewrites whole and in place: a disk that fills
during that rewrite leaves the file empty). A write that would start with less stops with
DiskFull instead, so the disk is full before Chroma's files are touched, not during."""


@dataclass(frozen=True)
class Damage:
    """One damaged store: `store` in words, the file or folder, and what is wrong with it."""

    store: str
    path: Path
    problem: str

    def as_dict(self) -> dict:
        return {"store": self.store, "path": str(self.path), "problem": self.problem}

    def sentence(self) -> str:
        return f"{self.store} ({self.path}): {self.problem}"


@dataclass
class HealthReport:
    """What check() found: the library's damage and the chats' (empty lists: healthy)."""

    library: list[Damage] = field(default_factory=list)
    chats: list[Damage] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.library and not self.chats

    @property
    def damages(self) -> list[Damage]:
        return self.library + self.chats


REPAIR_HINT = (
    "Run 'confidant repair' (or choose Rebuild the library in the window): it keeps the damaged "
    "files aside and rebuilds the library from your documents' files. Your chats and settings "
    "are kept."
)


class LibraryDamaged(Exception):
    """The library cannot be trusted; the message says what, where, and how to repair it."""

    def __init__(self, damages: list[Damage]) -> None:
        self.damages = list(damages)
        what = "; ".join(d.sentence() for d in self.damages)
        super().__init__(f"The library is damaged: {what}. {REPAIR_HINT}")


class DiskFull(Exception):
    """The disk holding the data directory is full; nothing already added is lost."""

    def __init__(self, where: Path) -> None:
        self.where = Path(where)
        super().__init__(
            f"The disk is full: free space on the disk holding {self.where} and run again; "
            "nothing already added is lost."
        )


# --------------------------------------------------------------------------- the checks
def check(home: Path) -> HealthReport:
    """The library's and the chats' damage, from their files alone (Chroma is not started)."""
    home = Path(home)
    return HealthReport(library=check_library(home), chats=check_chats(home / CHATS_DB))


def check_library(home: Path) -> list[Damage]:
    home = Path(home)
    db_path, store = home / LIBRARY_DB, home / VECTOR_DIR
    damages: list[Damage] = []
    live_ids, has_tables = _library_ids(db_path, damages)
    if damages:
        # The documents table is not readable: whatever Chroma holds cannot be checked against it.
        damages.extend(_chroma_damage(store, None))
        return damages
    chroma_ids = _chroma_record_ids(store)
    if not has_tables and chroma_ids:
        problem = (
            "it is missing"
            if not db_path.exists()
            else "it is empty"
            if db_path.stat().st_size == 0
            else "its tables are missing"
        )
        damages.append(
            Damage(
                "the documents table and keyword index",
                db_path,
                f"{problem}, while the vector store holds {len(chroma_ids)} passages",
            )
        )
    damages.extend(_chroma_damage(store, live_ids))
    return damages


def check_chats(path: Path) -> list[Damage]:
    path = Path(path)
    if not path.exists():
        return []
    problem = _sqlite_problem(path, CHATS_TABLES, allow_empty=True)
    return [Damage("the chats", path, problem)] if problem else []


def _library_ids(db_path: Path, damages: list[Damage]) -> tuple[set[str], bool]:
    """The live passages' ids and whether the tables exist; damage goes into `damages`."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return set(), False
    store = "the documents table and keyword index"
    try:
        db = _connect(db_path)
    except (sqlite3.Error, ValueError) as exc:
        damages.append(Damage(store, db_path, _sqlite_words(exc)))
        return set(), False
    try:
        problem = _quick_check(db)
        if problem:
            damages.append(Damage(store, db_path, problem))
            return set(), False
        tables = _tables(db)
        if not tables:
            return set(), False
        missing = [t for t in LIBRARY_TABLES if t not in tables]
        if missing:
            damages.append(Damage(store, db_path, f"its table(s) {', '.join(missing)} are missing"))
            return set(), False
        # A removal cut short (REMOVING) may have deleted its vectors already: recover()
        # finishes it, so its passages need none.
        ids = {
            r[0]
            for r in db.execute(
                "SELECT c.id FROM chunks c JOIN documents d ON c.doc_id=d.id AND c.version=d.hash "
                "WHERE d.status != ?",
                (DocStatus.REMOVING,),
            )
        }
        return ids, True
    except (sqlite3.Error, ValueError) as exc:
        damages.append(Damage(store, db_path, _sqlite_words(exc)))
        return set(), False
    finally:
        db.close()


def _chroma_record_ids(store: Path) -> set[str]:
    """Ids of the records Chroma's collection holds, read from chroma.sqlite3 (empty when
    there is no readable store: its damage is _chroma_damage's to report)."""
    path = store / CHROMA_DB
    if not path.exists() or path.stat().st_size == 0:
        return set()
    try:
        db = _connect(path)
    except sqlite3.Error:
        return set()
    try:
        return _collection_ids(db)
    except (sqlite3.Error, ValueError):
        return set()
    finally:
        db.close()


def _collection_ids(db: sqlite3.Connection) -> set[str]:
    rows = db.execute(
        "SELECT e.embedding_id FROM embeddings e JOIN segments s ON e.segment_id=s.id "
        "JOIN collections c ON s.collection=c.id WHERE c.name=? AND s.scope='METADATA'",
        (COLLECTION,),
    )
    return {r[0] for r in rows}


def _chroma_damage(store: Path, live_ids: set[str] | None) -> list[Damage]:
    """What is wrong with Chroma's store. `live_ids`: the passages it must hold (None: unknown,
    only the files themselves are checked)."""
    name = "the vector store"
    path = store / CHROMA_DB
    needed = bool(live_ids)
    if not path.exists() or path.stat().st_size == 0:
        if not needed:
            return []
        gone = "is missing" if not store.exists() else "is empty" if path.exists() else "is missing"
        where = store if not store.exists() else path
        return [Damage(name, where, f"it {gone}, while {len(live_ids)} passages need it")]
    try:
        db = _connect(path)
    except (sqlite3.Error, ValueError) as exc:
        return [Damage(name, path, _sqlite_words(exc))]
    try:
        problem = _quick_check(db)
        if problem:
            return [Damage(name, path, problem)]
        tables = _tables(db)
        bad_text = _bad_text(db, [t for t in CHROMA_SMALL_TABLES if t in tables])
        if bad_text:
            return [Damage(name, path, bad_text)]
        if not {"collections", "segments", "embeddings", "max_seq_id"} <= tables:
            return [Damage(name, path, "its tables are missing")] if needed or tables else []
        if db.execute("SELECT 1 FROM collections WHERE name=?", (COLLECTION,)).fetchone() is None:
            if needed:
                return [Damage(name, path, f"its collection '{COLLECTION}' is missing")]
            return []
        damages = []
        if live_ids:
            held = _collection_ids(db)
            lost = len(live_ids - held)
            if lost:
                damages.append(
                    Damage(name, path, f"{lost} of {len(live_ids)} passages have no vector")
                )
        damages.extend(_segment_damage(db, store))
        return damages
    except (sqlite3.Error, ValueError) as exc:
        return [Damage(name, path, _sqlite_words(exc))]
    finally:
        db.close()


CHROMA_SMALL_TABLES = (
    "tenants",
    "databases",
    "collections",
    "collection_metadata",
    "segments",
    "segment_metadata",
    "embeddings_queue",
)
"""Chroma's tables that stay small (the queue holds only what its index has not taken in yet):
their text is read whole at open, because Chroma's Rust core panics on text that is not
UTF-8 (a flipped byte that SQLite's own check does not see)."""


def _bad_text(db: sqlite3.Connection, tables: list[str]) -> str | None:
    columns = {t: [r[1] for r in db.execute(f'PRAGMA table_info("{t}")')] for t in tables}
    db.text_factory = bytes
    try:
        for table in tables:
            for column in columns[table]:
                rows = db.execute(
                    f'SELECT "{column}" FROM "{table}" WHERE typeof("{column}")=\'text\''
                )
                for (value,) in rows:
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        return f"its table {table} holds damaged text"
    finally:
        db.text_factory = str
    return None


def _segment_damage(db: sqlite3.Connection, store: Path) -> list[Damage]:
    """Each persisted vector segment's HNSW files and id map. Chroma records a segment's
    max_seq_id only after writing its files and its pickle, so a segment with that record
    must have them all (one without it has not persisted anything yet)."""
    damages = []
    rows = db.execute(
        "SELECT s.id, m.seq_id FROM segments s JOIN collections c ON s.collection=c.id "
        "LEFT JOIN max_seq_id m ON m.segment_id=s.id WHERE c.name=? AND s.scope='VECTOR'",
        (COLLECTION,),
    ).fetchall()
    for segment, seq_id in rows:
        folder = store / segment
        pickle_path = folder / PICKLE
        if not seq_id and not pickle_path.exists():
            continue
        missing = [f for f in (*HNSW_FILES, PICKLE) if not (folder / f).exists()]
        if missing:
            damages.append(
                Damage("the vector index", folder, f"file(s) {', '.join(missing)} are missing")
            )
            continue
        problem = _pickle_problem(pickle_path)
        if problem:
            damages.append(Damage("the vector index", pickle_path, problem))
    return damages


class _PlainUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numbers only (Chroma's id map is no more)."""

    def find_class(self, module, name):  # refuse every class
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _pickle_problem(path: Path) -> str | None:
    try:
        if path.stat().st_size == 0:
            return "it is empty (0 bytes; a full disk while Chroma rewrote it leaves it so)"
        with open(path, "rb") as fh:
            data = _PlainUnpickler(fh).load()
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    except Exception as exc:  # what a damaged pickle raises varies: EOF, bad opcode, ...
        return f"it cannot be read ({type(exc).__name__})"
    if not isinstance(data, dict) or not isinstance(data.get("id_to_label"), dict):
        return "it does not hold Chroma's id map"
    return None


# --------------------------------------------------------------------------- sqlite helpers
def _connect(path: Path) -> sqlite3.Connection:
    """Open an existing database without creating one (mode=rw: a WAL left by a killed
    process is read the way its owner would read it)."""
    return sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)


def _quick_check(db: sqlite3.Connection) -> str | None:
    try:
        rows = db.execute("PRAGMA quick_check(3)").fetchall()
    except (sqlite3.Error, ValueError) as exc:
        return _sqlite_words(exc)
    if rows == [("ok",)]:
        return None
    lines = [
        line
        for r in rows
        for line in str(r[0]).splitlines()
        if line.strip() and not line.startswith("*** in database")
    ]
    first = (lines or ["it does not pass its check"])[0][:160]
    return f"SQLite finds it damaged ({first})"


def _tables(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def _sqlite_problem(path: Path, tables: tuple[str, ...], allow_empty: bool) -> str | None:
    if path.stat().st_size == 0:
        return None if allow_empty else "it is empty"
    try:
        db = _connect(path)
    except (sqlite3.Error, ValueError) as exc:
        return _sqlite_words(exc)
    try:
        problem = _quick_check(db)
        if problem:
            return problem
        present = _tables(db)
        if not present and allow_empty:
            return None
        missing = [t for t in tables if t not in present]
        return f"its table(s) {', '.join(missing)} are missing" if missing else None
    except (sqlite3.Error, ValueError) as exc:
        return _sqlite_words(exc)
    finally:
        db.close()


def _sqlite_words(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "SQLite finds text in it that is not text (damaged)"
    text = str(exc)
    if "not a database" in text:
        return "it is not a database any more (overwritten or damaged)"
    if "malformed" in text:
        return f"SQLite finds it damaged ({text})"
    return f"it cannot be read ({text})"


# --------------------------------------------------------------------------- runtime errors
_DAMAGE_WORDS = (
    "database disk image is malformed",
    "file is not a database",
    "malformed database schema",
    "error deserializing pickle file",
    "error loading hnsw index",
    "error opening pickle file",
    "panicexception",
    "panicked",
)
_FULL_WORDS = ("database or disk is full", "no space left on device", "os error 28")


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_disk_full(exc: BaseException) -> bool:
    for e in _chain(exc):
        if isinstance(e, DiskFull):
            return True
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == 13:
            return True
        text = f"{type(e).__name__}: {e}".lower()
        if any(w in text for w in _FULL_WORDS):
            return True
    return False


def explain(exc: BaseException, home: Path) -> Exception | None:
    """A DiskFull or LibraryDamaged for an error that means one (else None), for the CLI and
    the window to show instead of 'an unexpected error'. Damage is named by check_library()
    where it can be; otherwise the error's own words say which store failed."""
    from app.core.vector_store import VectorStoreDamaged

    for e in _chain(exc):
        if isinstance(e, LibraryDamaged | DiskFull):
            return e
    if is_disk_full(exc) or _nearly_full(Path(home)):
        # Chroma's own words for a full disk vary ("Failed to apply logs to the metadata
        # segment"): an error on a disk with no room left is taken for what it most likely is.
        return DiskFull(Path(home))
    for e in _chain(exc):
        text = f"{type(e).__name__}: {e}".lower()
        if isinstance(e, VectorStoreDamaged) or any(w in text for w in _DAMAGE_WORDS):
            found = check_library(Path(home))
            if found:
                return LibraryDamaged(found)
            store = (
                Path(home) / VECTOR_DIR
                if isinstance(e, VectorStoreDamaged)
                or any(w in text for w in ("pickle", "hnsw", "panic", "chroma"))
                else Path(home) / LIBRARY_DB
            )
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            return LibraryDamaged([Damage("the library", store, f"it failed with: {first}")])
    return None


# --------------------------------------------------------------------------- disk space
def ensure_room(home: Path) -> None:
    """Raise DiskFull when the data directory's disk has less free than a write to the vector
    store may need (see DISK_RESERVE), before that write starts."""
    home = Path(home)
    try:
        free = shutil.disk_usage(home).free
    except OSError:
        return
    if free >= DISK_RESERVE + 2 * _pickle_bytes(home / VECTOR_DIR):
        return
    raise DiskFull(home)


def _nearly_full(home: Path) -> bool:
    try:
        return shutil.disk_usage(home).free < max(DISK_RESERVE, 1 << 20)
    except OSError:
        return False


def _pickle_bytes(store: Path) -> int:
    total = 0
    try:
        with os.scandir(store) as entries:
            for entry in entries:
                if entry.is_dir():
                    with contextlib.suppress(OSError):
                        total += os.stat(os.path.join(entry.path, PICKLE)).st_size
    except OSError:
        return 0
    return total


# --------------------------------------------------------------------------- setting aside
def aside_folder(home: Path) -> Path:
    """A new `damaged-YYYYmmdd-HHMMSS` folder in the data directory (0700)."""
    home = Path(home)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = home / f"{ASIDE_PREFIX}{stamp}"
    n = 1
    while folder.exists():
        n += 1
        folder = home / f"{ASIDE_PREFIX}{stamp}-{n}"
    folder.mkdir(mode=0o700)
    return folder


def set_aside(paths: list[Path], folder: Path) -> list[Path]:
    """Move each existing path (a database takes its -wal and -shm along) into `folder`;
    returns what was moved. A rename: nothing is copied, so a full disk does not stop it."""
    moved = []
    for path in paths:
        path = Path(path)
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
            if p.exists() or p.is_symlink():
                target = folder / p.name
                os.replace(p, target) if not p.is_dir() else shutil.move(str(p), str(target))
                moved.append(target)
    return moved
