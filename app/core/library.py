"""The library: a Chroma collection of vectors, an FTS5 keyword index and a documents table.

Consistency rule (what makes crashes harmless): every chunk carries the content hash of the file
version it came from (`version`). A document's `hash` names its live version; a new version is
written under `pending` and only swapped in, in one SQLite transaction, once all its chunks are in
both stores. Searches see only live versions. After a crash, `recover()` deletes whatever a
pending version or an unfinished removal left behind, in both stores, so the vector store, the
keyword index and the documents table never disagree.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from app.core.events import Hit
from app.core.paths import display, from_sql, fs_bytes, is_valid_text, to_sql
from app.core.row_writer import RowWriter
from app.core.status import DocStatus
from app.core.store_health import LibraryDamaged, check_library, ensure_room
from app.core.vector_store import (
    WRITE_SLICE,
    CollectionProcess,
    LocalCollection,
    VectorStoreDamaged,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    hash TEXT,                 -- live version (content sha256), NULL until one is ready
    pending TEXT,              -- version being written; non-NULL after a crash = interrupted
    size INTEGER NOT NULL DEFAULT 0,
    mtime REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL,      -- a DocStatus (status.py)
    error TEXT,
    chunks INTEGER NOT NULL DEFAULT 0,
    pages INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    doc_id INTEGER NOT NULL,
    version TEXT NOT NULL,
    idx INTEGER NOT NULL,
    page INTEGER,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, version, idx);
-- Folders kept in sync (sources.py). Added by a later version: created when an older library
-- is opened, like every table here.
CREATE TABLE IF NOT EXISTS sources (
    path TEXT PRIMARY KEY,
    added REAL NOT NULL,
    device INTEGER,            -- st_dev of the folder when last reached (an unplugged drive's
                               -- mount point is another device, or not there)
    state TEXT NOT NULL DEFAULT 'online',  -- online | offline | missing
    paused INTEGER NOT NULL DEFAULT 0,     -- 1: not watched while the window runs
    last_sync REAL,
    files INTEGER NOT NULL DEFAULT 0,      -- documents under it at the last sync
    message TEXT
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, content='chunks', content_rowid='rowid', tokenize='unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_vocab USING fts5vocab(chunks_fts, 'row');
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
"""

_INSERT_CHUNK = (
    'INSERT OR REPLACE INTO chunks (id, doc_id, version, idx, page, start, "end", text) '
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

_STOPWORDS = frozenset(
    """a an and are as at be by can do does for from how i in is it of on or that the this to was
    what when where which who why will with you your my me we our there their they these those
    about into if not no so than then have has had been were its""".split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


class DocumentRow(NamedTuple):
    """A row of the documents table. A named tuple, not a dataclass: the window's snapshots
    build one per document (20,000 of them every couple of seconds while a folder syncs), and
    a frozen dataclass took six times as long to build, time that other threads, the window's
    among them, waited for the GIL."""

    id: int
    path: str
    hash: str | None
    pending: str | None
    size: int
    mtime: float
    status: str  # a DocStatus value (equal to its member)
    error: str | None
    chunks: int
    pages: int


@dataclass(frozen=True)
class SourceRow:
    path: str
    added: float
    device: int | None
    state: str
    paused: bool
    last_sync: float | None
    files: int
    message: str | None


_SOURCE_COLUMNS = "path, added, device, state, paused, last_sync, files, message"
_SOURCE_FIELDS = frozenset(_SOURCE_COLUMNS.split(", ")[2:])


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk ready to store: its text, where it came from, and its place in the document."""

    idx: int
    page: int | None
    start: int
    end: int
    text: str


class EmbedderMismatch(Exception):
    """The library's vectors were made by another embedding model than the settings name."""

    def __init__(self, library_model: str, settings_model: str) -> None:
        super().__init__(
            f"The library was indexed with the embedding model '{library_model}', but the settings "
            f"now name '{settings_model}'. Vectors of two models cannot be mixed: re-index the "
            "library (confidant reindex, or Settings > Re-index) or switch the setting back."
        )
        self.library_model = library_model
        self.settings_model = settings_model


def chunk_id(doc_id: int, version: str, idx: int) -> str:
    """Deterministic, so writing the same chunk twice (after a crash) is an upsert, not a copy."""
    return f"{doc_id}-{version[:16]}-{idx}"


def fts_terms(text: str) -> list[str]:
    """The distinct words of a question, stop words dropped (unless nothing else is left)."""
    words = [w.lower() for w in _WORD.findall(text)]
    kept = [w for w in words if w not in _STOPWORDS] or words
    return list(dict.fromkeys(kept))[:32]


COMMON_TERM_SHARE = 0.05
COMMON_TERM_MIN = 2000
"""A word found in more than this share of chunks (and in more than COMMON_TERM_MIN of them:
shorter posting lists cost little) barely moves BM25 but makes FTS5 score every chunk containing
it; such words are left out of the keyword query (the vectors still see them), even when no word
is left. At 100k chunks that made keyword search an order of magnitude faster, and hit@5 no
worse (bench/NOTES.md, "common words")."""


def _turns(method):
    """Run a read under the library's lock. Reads share the writers' connection, and a read
    statement still open on it (another thread's) while the row writer's connection commits
    makes that connection's next write fail at once (SQLITE_BUSY_SNAPSHOT, "database is
    locked", seen while ingesting): so reads and writes take turns."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Library:
    """The store. Thread-safe: one lock serialises writes and reads of its connection; the
    chunk rows are written by the row writer's own connection (row_writer.py)."""

    COLLECTION = "chunks"

    def __init__(self, home: Path, vector_process: bool = True, checked: bool = False) -> None:
        """`vector_process`: Chroma runs in a child process (vector_store.py), so its writes
        never stall this process; False keeps it in this one, as before (bench A/B).
        `checked`: the stores were just found sound (Services.health()), not read again."""
        self.home = Path(home)
        self.vector_process = vector_process
        # Before anything is read or written: a damaged store is refused, never taken for an
        # empty one (whose vectors would all look stray) or a complete one (store_health.py).
        damages = [] if checked else check_library(self.home)
        if damages:
            raise LibraryDamaged(damages)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.home / "library.sqlite3", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        _chmod_private(self.home / "library.sqlite3")
        self._collection = None
        # Chunk rows are written by a thread of their own while the next batch is embedded.
        self._rows = RowWriter(self.home / "library.sqlite3", _INSERT_CHUNK)

    # ------------------------------------------------------------------ lifecycle
    @property
    def collection(self):
        """The Chroma collection, in its own process or this one (vector_store.py), opened on
        first use (importing chromadb is slow: not before the library is searched or written)."""
        if self._collection is None:
            with self._lock:
                if self._collection is None:
                    store = self.home / "library"
                    store.mkdir(mode=0o700, exist_ok=True)
                    try:
                        if self.vector_process:
                            collection = CollectionProcess(store, self.COLLECTION)
                            collection.start()
                        else:
                            collection = LocalCollection(store, self.COLLECTION, WRITE_SLICE)
                    except VectorStoreDamaged as exc:
                        raise LibraryDamaged(
                            check_library(self.home) or [_opening_damage(store, exc)]
                        ) from exc
                    self._collection = collection
                    _chmod_private(store)
        return self._collection

    def close(self) -> None:
        with self._lock:
            try:
                self._rows.close()
            finally:
                self._db.close()
            if self._collection is not None:
                self._collection.close()  # after the writes it was sent
                _chmod_private(self.home / "library")  # Chroma writes index files as it goes
            _chmod_private(self.home / "library.sqlite3")
            self._collection = None

    # ------------------------------------------------------------------ embedder identity
    def check_embedder(self, model_id: str) -> None:
        """Record the embedder on first use; refuse a different one later (EmbedderMismatch)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('embedder', ?)", (model_id,))
            elif row[0] != model_id:
                if self.chunk_count() == 0:
                    self._db.execute("UPDATE meta SET value=? WHERE key='embedder'", (model_id,))
                else:
                    raise EmbedderMismatch(row[0], model_id)

    @_turns
    def embedder(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ reading
    @_turns
    def documents(self) -> list[DocumentRow]:
        rows = self._db.execute(
            "SELECT id, path, hash, pending, size, mtime, status, error, chunks, pages "
            "FROM documents ORDER BY path"
        ).fetchall()
        return [_document_row(r) for r in rows]

    @_turns
    def unfinished(self) -> list[str]:
        """Paths of documents a run meant to (re)read and did not finish: a version half-written
        when the process died (before recover(); 'interrupted' after it, if none is live), or
        reset by a re-index and not read again yet ('queued')."""
        rows = self._db.execute(
            "SELECT path FROM documents WHERE status != ? AND (pending IS NOT NULL "
            "OR (hash IS NULL AND status IN (?, ?))) ORDER BY path",
            (DocStatus.REMOVING, DocStatus.QUEUED, DocStatus.INTERRUPTED),
        ).fetchall()
        return [from_sql(r[0]) for r in rows]

    @_turns
    def document(self, path: str) -> DocumentRow | None:
        row = self._db.execute(
            "SELECT id, path, hash, pending, size, mtime, status, error, chunks, pages "
            "FROM documents WHERE path=?",
            (to_sql(path),),
        ).fetchone()
        return _document_row(row) if row else None

    @_turns
    def chunk_count(self) -> int:
        return self._db.execute(
            "SELECT count(*) FROM chunks c JOIN documents d ON c.doc_id=d.id AND c.version=d.hash"
        ).fetchone()[0]

    @_turns
    def hits_for_ids(self, ids: Sequence[str]) -> dict[str, Hit]:
        """Live chunks by id (pending or stale versions are left out)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(
            f'SELECT c.id, d.path, c.page, c.text, c.start, c."end", c.doc_id, c.idx '
            f"FROM chunks c JOIN documents d ON c.doc_id=d.id AND c.version=d.hash "
            f"WHERE c.id IN ({marks})",
            list(ids),
        ).fetchall()
        return {r[0]: _hit(r) for r in rows}

    def keyword_search(self, text: str, k: int) -> list[str]:
        """Chunk ids ranked by BM25 over the live chunks."""
        return [i for i, _ in self.keyword_search_scored(text, k)]

    @_turns
    def keyword_search_scored(self, text: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score: higher is better) over the live chunks, best first."""
        terms = self._selective_terms(fts_terms(text))
        if not terms:
            return []
        query = " OR ".join(f'"{w}"' for w in terms)
        # Rank inside FTS5 first (its own ORDER BY rank path), then keep live chunks only.
        rows = self._db.execute(
            "SELECT c.id, f.rank FROM (SELECT rowid, rank FROM chunks_fts WHERE chunks_fts "
            "MATCH ? ORDER BY rank LIMIT ?) f JOIN chunks c ON c.rowid=f.rowid "
            "JOIN documents d ON c.doc_id=d.id AND c.version=d.hash ORDER BY f.rank",
            (query, k * 3),
        ).fetchall()
        return [(r[0], -float(r[1])) for r in rows[:k]]  # FTS5's rank is BM25 negated

    def _selective_terms(self, terms: list[str]) -> list[str]:
        """Drop words too common to matter (see COMMON_TERM_SHARE). A question made only of
        such words gets no keyword candidates: the vector search answers it alone."""
        total = self._db.execute("SELECT max(rowid) FROM chunks").fetchone()[0] or 0
        limit = max(COMMON_TERM_SHARE * total, COMMON_TERM_MIN)
        if total <= limit:  # a small library: every posting list is short
            return terms
        kept = []
        for term in terms:
            row = self._db.execute("SELECT doc FROM chunks_vocab WHERE term=?", (term,)).fetchone()
            if (row[0] if row else 0) <= limit:
                kept.append(term)
        return kept

    @_turns
    def term_frequency(self, term: str) -> int:
        """How many chunks hold `term` (a lower-case word as the keyword index splits them)."""
        row = self._db.execute("SELECT doc FROM chunks_vocab WHERE term=?", (term,)).fetchone()
        return int(row[0]) if row else 0

    def best_similarities(self, vectors: np.ndarray) -> list[float]:
        """Each vector's best cosine similarity in the collection, in one query (0.0 for an
        empty collection)."""
        if len(vectors) == 0:
            return []
        result = self.collection.query(
            query_embeddings=[v.tolist() for v in vectors], n_results=1, include=["distances"]
        )
        return [1.0 - d[0] if d else 0.0 for d in result["distances"]]

    def vector_search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) best first; may include ids of non-live versions.

        Chroma returns fewer than k ids when it holds fewer (none when empty), so the collection
        is not counted first: at 100k chunks a count() costs more than the search itself
        (bench/NOTES.md, "Retrieval at 100k synthetic chunks")."""
        result = self.collection.query(
            query_embeddings=[vector.tolist()], n_results=k, include=["distances"]
        )
        return [(i, 1.0 - d) for i, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    # ------------------------------------------------------------------ sources
    @_turns
    def sources(self) -> list[SourceRow]:
        rows = self._db.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY path").fetchall()
        return [SourceRow(from_sql(r[0]), r[1], r[2], r[3], bool(r[4]), *r[5:]) for r in rows]

    @_turns
    def add_source(self, path: str, device: int | None) -> bool:
        """Remember a folder; False when it was known already."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO sources (path, added, device) VALUES (?, ?, ?)",
            (to_sql(path), time.time(), device),
        )
        return cur.rowcount > 0

    @_turns
    def update_source(self, path: str, **values) -> None:
        unknown = set(values) - _SOURCE_FIELDS
        if unknown:
            raise ValueError(f"not a source field: {sorted(unknown)}")
        if values:
            sets = ", ".join(f"{k}=?" for k in values)
            self._db.execute(
                f"UPDATE sources SET {sets} WHERE path=?", (*values.values(), to_sql(path))
            )

    @_turns
    def forget_source(self, path: str) -> bool:
        """Forget the folder (its documents are the caller's to remove)."""
        return self._db.execute("DELETE FROM sources WHERE path=?", (to_sql(path),)).rowcount > 0

    def move_document(self, doc_id: int, new_path: str, size: int, mtime: float) -> None:
        """Point a document at its file's new place (renamed or moved, same bytes): nothing is
        read or embedded again. The vector that carries the path for repair is updated first;
        a crash between the two leaves the old path, and the next sync moves it again."""
        with self._lock:
            live = self._db.execute("SELECT hash FROM documents WHERE id=?", (doc_id,)).fetchone()
            if live and live[0] and self._has_vectors():
                self._settle()
                first = chunk_id(doc_id, live[0], 0)
                got = self.collection.get(ids=[first], include=["embeddings", "metadatas"])
                if got["ids"]:
                    meta = dict(got["metadatas"][0] or {})
                    meta["path"] = path_for_meta(new_path)
                    self.collection.upsert(
                        ids=[first],
                        embeddings=np.asarray(got["embeddings"], dtype=np.float32),
                        metadatas=[meta],
                    )
                    self._settle()
            self._db.execute(
                "UPDATE documents SET path=?, size=?, mtime=?, updated=? WHERE id=?",
                (to_sql(new_path), size, mtime, time.time(), doc_id),
            )

    def note_stat(self, doc_id: int, size: int, mtime: float) -> None:
        """The file was touched (its bytes unchanged): keep its size and mtime, so the next
        sync need not hash it again."""
        with self._lock:
            self._db.execute(
                "UPDATE documents SET size=?, mtime=? WHERE id=?", (size, mtime, doc_id)
            )

    # ------------------------------------------------------------------ writing a version
    def begin_version(self, path: str, version: str, size: int, mtime: float) -> int:
        """Start writing a new version of `path`; returns the document id."""
        with self._lock:
            now = time.time()
            row = self.document(path)
            if row is None:
                cur = self._db.execute(
                    "INSERT INTO documents (path, pending, size, mtime, status, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (to_sql(path), version, size, mtime, DocStatus.INDEXING, now),
                )
                return int(cur.lastrowid)
            if row.pending and row.pending != version:
                self._purge_version(row.id, row.pending)
            self._db.execute(
                "UPDATE documents SET pending=?, updated=? WHERE id=?", (version, now, row.id)
            )
            return row.id

    def add_chunks(
        self, doc_id: int, version: str, chunks: Sequence[ChunkRecord], vectors: np.ndarray
    ) -> None:
        """Store one batch in both stores. Idempotent: ids are deterministic. Chroma's process
        writes the vectors and the row writer the keyword rows while this thread goes on; both
        are flushed (their errors raised) before anything that must see them."""
        if not chunks:
            return
        ids = [chunk_id(doc_id, version, c.idx) for c in chunks]
        metas: list[dict] = [{"doc_id": doc_id, "version": version} for _ in chunks]
        for meta, c in zip(metas, chunks, strict=True):
            if c.idx == 0:  # once a document: what repair finds if library.sqlite3 is lost
                meta["path"] = path_for_meta(self._path_of(doc_id))
        with self._lock:
            ensure_room(self.home)  # a full disk stops here, not inside Chroma's files
            self.collection.upsert(
                ids=ids, embeddings=np.asarray(vectors, dtype=np.float32), metadatas=metas
            )
            self._rows.put(
                [
                    (i, doc_id, version, c.idx, c.page, c.start, c.end, c.text)
                    for i, c in zip(ids, chunks, strict=True)
                ]
            )

    def _path_of(self, doc_id: int) -> str:
        with self._lock:
            row = self._db.execute("SELECT path FROM documents WHERE id=?", (doc_id,)).fetchone()
        return from_sql(row[0]) if row else ""

    def commit_version(self, doc_id: int, version: str, chunks: int, pages: int) -> None:
        """Make `version` live (one transaction), then drop the version it replaces."""
        with self._lock:
            self._settle()  # every row and vector of it written, or the error raised
            old = self._db.execute("SELECT hash FROM documents WHERE id=?", (doc_id,)).fetchone()[0]
            self._db.execute(
                "UPDATE documents SET hash=?, pending=NULL, status=?, error=NULL, chunks=?, "
                "pages=?, updated=? WHERE id=?",
                (version, DocStatus.READY, chunks, pages, time.time(), doc_id),
            )
            if old and old != version:
                self._purge_version(doc_id, old)

    def abandon_version(
        self, doc_id: int, version: str, status: DocStatus, error: str | None
    ) -> None:
        """A new version failed: drop what was written of it. A live older version stays."""
        error = display(error) if error is not None else None
        with self._lock:
            self._purge_version(doc_id, version)
            live = self._db.execute("SELECT hash FROM documents WHERE id=?", (doc_id,)).fetchone()[
                0
            ]
            if live:
                self._db.execute(
                    "UPDATE documents SET pending=NULL, error=?, updated=? WHERE id=?",
                    (error, time.time(), doc_id),
                )
            else:
                self._db.execute(
                    "UPDATE documents SET pending=NULL, status=?, error=?, chunks=0, updated=? "
                    "WHERE id=?",
                    (status, error, time.time(), doc_id),
                )

    def record_unreadable(
        self, path: str, status: DocStatus, error: str, size: int = 0, mtime: float = 0.0
    ) -> None:
        """Note a file that was skipped or failed before any version was started."""
        error = display(error)
        with self._lock:
            row = self.document(path)
            if row is None:
                self._db.execute(
                    "INSERT INTO documents (path, size, mtime, status, error, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (to_sql(path), size, mtime, status, error, time.time()),
                )
            elif row.hash is None:  # its size and mtime: a sync reads it again once they change
                self._db.execute(
                    "UPDATE documents SET status=?, error=?, size=?, mtime=?, updated=? WHERE id=?",
                    (status, error, size, mtime, time.time(), row.id),
                )
            else:
                self._db.execute(
                    "UPDATE documents SET error=?, updated=? WHERE id=?",
                    (error, time.time(), row.id),
                )

    # ------------------------------------------------------------------ removing
    def remove(self, path: str) -> bool:
        """Delete a document everywhere. Marked first: a crash midway is finished by recover()."""
        with self._lock:
            row = self.document(path)
            if row is None:
                return False
            self._db.execute(
                "UPDATE documents SET status=? WHERE id=?", (DocStatus.REMOVING, row.id)
            )
            self._finish_removal(row.id)
            return True

    def _finish_removal(self, doc_id: int) -> None:
        self._settle()
        if self._has_vectors():
            self.collection.delete(where={"doc_id": doc_id})
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        self._db.execute("DELETE FROM documents WHERE id=?", (doc_id,))
        self._db.execute("COMMIT")

    def _purge_version(self, doc_id: int, version: str) -> None:
        self._settle()
        if self._has_vectors():
            self.collection.delete(where={"$and": [{"doc_id": doc_id}, {"version": version}]})
        self._db.execute("DELETE FROM chunks WHERE doc_id=? AND version=?", (doc_id, version))

    def _settle(self) -> None:
        """Wait for the writes handed to the row writer and Chroma's process; raise their
        first error. Everything that deletes or checks rows comes after this."""
        self._rows.flush()
        if self._collection is not None:
            self._collection.flush()

    def _has_vectors(self) -> bool:
        return self._collection is not None or (self.home / "library").exists()

    # ------------------------------------------------------------------ crash recovery
    def recover(self) -> list[str]:
        """Undo what an abrupt stop left half-done; returns the paths that were interrupted."""
        with self._lock:
            self._settle()
            interrupted = []
            for row in self.documents():
                if row.status == DocStatus.REMOVING:
                    self._finish_removal(row.id)
                elif row.pending:
                    interrupted.append(row.path)
                    self._purge_version(row.id, row.pending)
                    status = DocStatus.READY if row.hash else DocStatus.INTERRUPTED
                    self._db.execute(
                        "UPDATE documents SET pending=NULL, status=? WHERE id=?", (status, row.id)
                    )
            # A crash between commit_version's swap and the purge of the version it replaced
            # leaves chunks of a version that is neither live nor pending: purge those too.
            for doc_id, version in self._db.execute(
                "SELECT DISTINCT c.doc_id, c.version FROM chunks c WHERE NOT EXISTS ("
                "SELECT 1 FROM documents d WHERE d.id=c.doc_id AND d.hash IS c.version)"
            ).fetchall():
                self._purge_version(doc_id, version)
            self._drop_stray_vectors()
            return interrupted

    def _drop_stray_vectors(self) -> None:
        """Delete vectors with no keyword-index row (a crash between the two stores' writes)."""
        if not self._has_vectors():
            return
        stored = self._db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        if self.collection.count() == stored:
            return
        known = {r[0] for r in self._db.execute("SELECT id FROM chunks")}
        stray = [i for i in self.collection.get(include=[])["ids"] if i not in known]
        for start in range(0, len(stray), 1000):
            self.collection.delete(ids=stray[start : start + 1000])

    def reset(self) -> None:
        """Forget every vector and chunk (for a re-index with another embedder); keep the paths."""
        with self._lock:
            self._settle()
            # Keyword rows first: a crash before the vectors go leaves only stray vectors,
            # which recover() drops; the other order would leave live chunks with no vector.
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM chunks")
            self._db.execute(
                "UPDATE documents SET hash=NULL, pending=NULL, status=?, chunks=0",
                (DocStatus.QUEUED,),
            )
            self._db.execute("DELETE FROM meta WHERE key='embedder'")
            self._db.execute("COMMIT")
            if self._has_vectors():
                self.collection.reset()

    @_turns
    def verify(self) -> list[str]:
        """Problems found comparing the stores (empty when consistent). For tests and `doctor`."""
        self._settle()
        problems = []
        live = {
            r[0]
            for r in self._db.execute(
                "SELECT c.id FROM chunks c JOIN documents d ON c.doc_id=d.id AND c.version=d.hash"
            )
        }
        all_sql = {r[0] for r in self._db.execute("SELECT id FROM chunks")}
        vec = set(self.collection.get(include=[])["ids"]) if self._has_vectors() else set()
        if all_sql - live:
            problems.append(f"{len(all_sql - live)} keyword-index chunks of no live version")
        if vec - live:
            problems.append(f"{len(vec - live)} vectors of no live version")
        if live - vec:
            problems.append(f"{len(live - vec)} live chunks without a vector")
        fts = self._db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
        if fts != len(all_sql):
            problems.append(f"keyword index has {fts} rows for {len(all_sql)} chunks")
        for row in self.documents():
            if row.status == DocStatus.READY:
                n = self._db.execute(
                    "SELECT count(*) FROM chunks WHERE doc_id=? AND version=?", (row.id, row.hash)
                ).fetchone()[0]
                if n != row.chunks:
                    problems.append(f"{row.path}: {n} chunks stored, {row.chunks} recorded")
            if row.pending or row.status in (DocStatus.INDEXING, DocStatus.REMOVING):
                problems.append(f"{row.path}: unfinished ({row.status})")
        return problems

    @_turns
    def stored_chunk_ids(self) -> list[str]:
        self._settle()
        return [r[0] for r in self._db.execute("SELECT id FROM chunks ORDER BY id")]


PATH_BYTES = "fsbytes:"


def path_for_meta(path: str) -> str:
    """A path as Chroma's metadata holds it (valid text only): as it is, or its bytes in hex
    after PATH_BYTES when the name is not valid UTF-8 (an absolute path never starts so)."""
    return path if is_valid_text(path) else PATH_BYTES + fs_bytes(path).hex()


def path_from_meta(value: str) -> str:
    if value.startswith(PATH_BYTES):
        return os.fsdecode(bytes.fromhex(value[len(PATH_BYTES) :]))
    return value


def _opening_damage(store: Path, exc: Exception):
    from app.core.store_health import Damage

    return Damage("the vector store", store, str(exc))


def _document_row(row: tuple) -> DocumentRow:
    if not isinstance(row[1], str):  # a path that is not valid UTF-8 (paths.to_sql)
        row = (row[0], from_sql(row[1]), *row[2:])
    return _new_tuple(DocumentRow, row)


_new_tuple = tuple.__new__  # a named tuple from a row at C speed


def _hit(r: tuple) -> Hit:
    return Hit(r[0], from_sql(r[1]), r[2], r[3], 0.0, r[4], r[5], r[6], r[7])


def _chmod_private(path: Path) -> None:
    """Owner-only: 0600 for a file (and its SQLite -wal/-shm), 0700 for a folder and all inside."""
    if os.name != "posix" or not path.exists():
        return
    if path.is_dir():
        os.chmod(path, 0o700)
        for root, dirs, files in os.walk(path):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o700)
            for name in files:
                os.chmod(os.path.join(root, name), 0o600)
        return
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists():
            os.chmod(p, 0o600)
