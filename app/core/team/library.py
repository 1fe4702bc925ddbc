"""The library on a Chroma server (`chroma run`), shared by every workstation of a team.

What lives where:
- On the server, two collections. `confidant-chunks`: each chunk's vector, its text (as the
  Chroma document) and where it came from (doc_id, version, idx, page, start, end). And
  `confidant-documents`: one row per document (its shared path, live version `hash`, status,
  counts), plus the embedder's name. The server is the only source of truth.
- On each workstation, a keyword replica (`team/<server>/library.sqlite3` in the data
  directory, never the local library): the live chunks' text in the same FTS5 index the local
  library uses, brought up to date from the server before each search (one read of the
  documents rows; only new or changed versions' chunks are fetched). So BM25 ranks exactly as
  in local mode and the keyword half of hybrid retrieval holds. The replica is disposable:
  deleted, or damaged, it is rebuilt from the server.

Many writers: a document's id is derived from its shared path (library_path_map turns this
computer's path into the team's name for the file), a chunk's id from (document, content hash,
index), so the same file added from two workstations writes the same ids: one document. A
version goes live (its documents row names it) only after the server holds all its chunks;
the version it replaced is deleted after. Two clients writing different versions at once each
make theirs live whole; the last to commit wins, and searches only ever see a complete live
version. A removal deletes the documents row first (every client stops seeing it at its next
search), then the chunks.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from app.core.events import Hit
from app.core.library import (
    ChunkRecord,
    DocumentRow,
    EmbedderMismatch,
    Library,
    chunk_id,
    path_for_meta,
    path_from_meta,
)
from app.core.paths import from_sql, to_sql
from app.core.status import DocStatus
from app.core.store_health import LibraryDamaged
from app.core.team.http import (
    InsecureServer,
    Secret,
    ServerUnavailable,
    auth_headers,
    check_url,
    safe_url,
    why_unreachable,
)

log = logging.getLogger(__name__)

CHUNKS = "confidant-chunks"
DOCUMENTS = "confidant-documents"
WRITES = "confidant-writes"  # one row per version being written: (doc_id, version, touched)
STALE_AFTER_S = 3600.0  # a version untouched this long was left by a writer that died
_META = "meta:embedder"
_PAGE = 1000  # rows per get() from the server


class PathMap:
    """'LOCAL=SHARED;LOCAL2=SHARED2': this computer's path prefixes and the team's names."""

    def __init__(self, spec: str = "") -> None:
        self.pairs: list[tuple[str, str]] = []
        for part in (spec or "").split(";"):
            if "=" in part:
                local, shared = (s.strip() for s in part.split("=", 1))
                if local and shared:
                    self.pairs.append((local, shared))

    def to_shared(self, path: str) -> str:
        for local, shared in self.pairs:
            if path.startswith(local):
                return shared + path[len(local) :].replace("\\", "/")
        return path

    def to_local(self, path: str) -> str:
        for local, shared in self.pairs:
            if path.startswith(shared):
                rest = path[len(shared) :]
                sep = "\\" if "\\" in local else "/"
                return local + rest.replace("/", sep)
        return path


def doc_id_for(shared_path: str) -> int:
    """A document's id from its shared path: the same on every workstation (60 bits, so it
    fits Chroma's integer metadata)."""
    return int(hashlib.sha256(shared_path.encode("utf-8", "surrogateescape")).hexdigest()[:15], 16)


class RemoteLibrary:
    """The Library surface (what ingestion, retrieval, the gate and the window use) over a
    Chroma server. Nothing connects until first use, so a server that is down does not stop
    the window from opening: the first search or listing says it cannot be reached."""

    def __init__(
        self,
        home: Path,
        server: str,
        token: str = "",
        path_map: str = "",
        allow_insecure_http: bool = False,
        sync_every_s: float = 0.0,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.home = Path(home)
        self.stale_after_s = stale_after_s
        self.clock = time.time  # wall time: writers' marks are compared across workstations
        self.server = check_url(server, allow_insecure_http, "library server")
        self._token = Secret(token)
        self.paths = PathMap(path_map)
        self.sync_every_s = sync_every_s
        self._lock = threading.RLock()
        self._client = None
        self._chunks_col = None
        self._docs_col = None
        self._writes_col = None
        self._replica: Library | None = None
        self._synced_at = 0.0
        key = hashlib.sha256(self.server.encode()).hexdigest()[:16]
        self.replica_dir = self.home / "team" / key

    def __repr__(self) -> str:
        return f"RemoteLibrary({safe_url(self.server)!r})"

    # ------------------------------------------------------------------ connection
    def _connect(self) -> None:
        """Reach the server. The lock is not held while the network is waited on: close(),
        from the window's thread, never waits for a server that does not answer."""
        with self._lock:
            if self._client is not None:
                return
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        parts = urlsplit(self.server)
        if parts.path not in ("", "/"):
            raise InsecureServer(
                f"The library server address must be the Chroma server's root "
                f"({safe_url(self.server)} has a path): e.g. https://host:8000."
            )
        ssl = parts.scheme == "https"
        try:
            client = chromadb.HttpClient(
                host=parts.hostname,
                port=parts.port or (443 if ssl else 80),
                ssl=ssl,
                headers=auth_headers(self._token),
                settings=ChromaSettings(anonymized_telemetry=False, chroma_server_ssl_verify=True),
            )
            chunks = client.get_or_create_collection(
                CHUNKS, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
            docs = client.get_or_create_collection(DOCUMENTS, embedding_function=None)
            writes = client.get_or_create_collection(WRITES, embedding_function=None)
        except Exception as exc:
            raise self._unavailable(exc) from None
        with self._lock:
            if self._client is None:
                self._client = client
                self._chunks_col, self._docs_col, self._writes_col = chunks, docs, writes
                return
        _close_client(client)  # another thread connected first

    def _unavailable(self, exc: Exception) -> Exception:
        if isinstance(exc, ServerUnavailable):
            return exc
        text = f"{type(exc).__name__}: {exc}".lower()
        if any(w in text for w in ("unauthori", "forbidden", "401", "403")):
            return ServerUnavailable(
                f"The team library at {safe_url(self.server)} refused the request: check "
                "library_token in the settings."
            )
        return ServerUnavailable(
            f"The team library at {safe_url(self.server)} cannot be reached: "
            f"{why_unreachable(exc)}. Check that the server is running; your local library "
            "is unchanged."
        )

    def _call(self, fn: Callable, *args, **kwargs):
        """Run a call on the server; a connection failure becomes a ServerUnavailable."""
        self._connect()
        try:
            return fn(*args, **kwargs)
        except (ValueError, TypeError, KeyError):
            raise
        except Exception as exc:
            raise self._unavailable(exc) from None

    def _collection(self, name: str):
        self._connect()
        with self._lock:
            found = getattr(self, name)
        if found is None:  # closed meanwhile (the settings changed, the window closed)
            raise ServerUnavailable(f"The team library at {safe_url(self.server)} was closed.")
        return found

    @property
    def _chunks(self):
        return self._collection("_chunks_col")

    @property
    def _docs(self):
        return self._collection("_docs_col")

    @property
    def _writes(self):
        return self._collection("_writes_col")

    @property
    def collection(self):
        """The server's chunks collection (query, get: Chroma's own)."""
        return _Guarded(self._chunks, self._unavailable)

    @property
    def replica(self) -> Library:
        with self._lock:
            if self._replica is None:
                self.replica_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                try:
                    self._replica = Library(self.replica_dir)
                except LibraryDamaged:  # disposable: rebuilt from the server
                    shutil.rmtree(self.replica_dir, ignore_errors=True)
                    self.replica_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                    self._replica = Library(self.replica_dir)
            return self._replica

    def close(self) -> None:
        """Close the replica and let go of the connection to the server (chromadb shares one
        per server in a process and closes it with its last client)."""
        with self._lock:
            if self._replica is not None:
                self._replica.close()
                self._replica = None
            client, self._client = self._client, None
            self._chunks_col = self._docs_col = self._writes_col = None
        if client is not None:
            _close_client(client)

    # ------------------------------------------------------------------ server rows
    def _doc_rows(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        offset = 0
        while True:
            got = self._call(self._docs.get, include=["metadatas"], limit=_PAGE, offset=offset)
            for i, meta in zip(got["ids"], got["metadatas"], strict=True):
                out[i] = meta or {}
            if len(got["ids"]) < _PAGE:
                return out
            offset += _PAGE

    def _doc_row(self, doc_id: int) -> dict | None:
        got = self._call(self._docs.get, ids=[str(doc_id)], include=["metadatas"])
        return (got["metadatas"][0] or {}) if got["ids"] else None

    def _put_row(self, doc_id: int, meta: dict) -> None:
        meta = {k: v for k, v in meta.items() if v is not None}
        meta["updated"] = time.time()
        self._call(self._docs.upsert, ids=[str(doc_id)], embeddings=[[1.0]], metadatas=[meta])

    def _as_row(self, doc_id: int, meta: dict) -> DocumentRow:
        return DocumentRow(
            id=int(doc_id),
            path=self._local_path(meta),
            hash=meta.get("hash") or None,
            pending=meta.get("pending") or None,
            size=int(meta.get("size", 0)),
            mtime=float(meta.get("mtime", 0.0)),
            status=meta.get("status", DocStatus.READY.value),
            error=meta.get("error") or None,
            chunks=int(meta.get("chunks", 0)),
            pages=int(meta.get("pages", 0)),
        )

    # ------------------------------------------------------------------ embedder identity
    def check_embedder(self, model_id: str) -> None:
        row = self._doc_row_raw(_META)
        if row is None:
            self._call(
                self._docs.upsert,
                ids=[_META],
                embeddings=[[1.0]],
                metadatas=[{"embedder": model_id}],
            )
        elif row.get("embedder") != model_id:
            if self._call(self._chunks.count) == 0:
                self._call(
                    self._docs.upsert,
                    ids=[_META],
                    embeddings=[[1.0]],
                    metadatas=[{"embedder": model_id}],
                )
            else:
                raise EmbedderMismatch(row.get("embedder", "?"), model_id)

    def _doc_row_raw(self, key: str) -> dict | None:
        got = self._call(self._docs.get, ids=[key], include=["metadatas"])
        return (got["metadatas"][0] or {}) if got["ids"] else None

    def embedder(self) -> str | None:
        row = self._doc_row_raw(_META)
        return row.get("embedder") if row else None

    # ------------------------------------------------------------------ reading
    def documents(self) -> list[DocumentRow]:
        rows = [self._as_row(int(i), m) for i, m in self._doc_rows().items() if i != _META]
        return sorted(rows, key=lambda r: r.path)

    def _local_path(self, meta: dict) -> str:
        return self.paths.to_local(path_from_meta(meta.get("path", "")))

    def _find(self, shared: str) -> tuple[int, dict | None]:
        """(id, row) of the document the team knows by `shared`: by the id its name gives,
        else by its path (a moved document keeps the id of the name it was added under)."""
        doc_id = doc_id_for(shared)
        meta = self._doc_row(doc_id)
        if meta is None:
            got = self._call(
                self._docs.get, where={"path": path_for_meta(shared)}, include=["metadatas"]
            )
            if got["ids"]:
                return int(got["ids"][0]), got["metadatas"][0] or {}
        return doc_id, meta

    def document(self, path: str) -> DocumentRow | None:
        doc_id, meta = self._find(self.paths.to_shared(path))
        return self._as_row(doc_id, meta) if meta is not None else None

    def unfinished(self) -> list[str]:
        """Nothing to resume from the server: each workstation's own queue resumes its runs."""
        return []

    def recover(self) -> list[str]:
        """At each ingest or sync start: sweep the versions writers that died left unfinished
        (see sweep()). Nothing is returned to resume: each workstation's own queue resumes
        its runs, and another workstation's half-written version is not this one's to read."""
        self.sweep()
        return []

    def sweep(self) -> int:
        """Remove the unfinished versions no writer has touched for `stale_after_s`; returns
        how many. Every writer marks the version it writes (a row in WRITES) and touches the
        mark with each batch of chunks, so a version another workstation is writing right now
        is left alone; one whose writer died (its mark stale) loses its chunks, unless it went
        live, and its document's row forgets it: a document that never went live is marked
        'interrupted' (its workstation's queue adds it again at its next start)."""
        got = self._call(self._writes.get, include=["metadatas"])
        marks = [(i, m or {}) for i, m in zip(got["ids"], got["metadatas"], strict=True)]
        cutoff = self.clock() - self.stale_after_s
        fresh = {int(m.get("doc_id", -1)) for _, m in marks if m.get("touched", 0) >= cutoff}
        swept = 0
        for mark, meta in marks:
            if meta.get("touched", 0) >= cutoff or "doc_id" not in meta:
                continue
            doc_id, version = int(meta["doc_id"]), str(meta.get("version", ""))
            row = self._doc_row(doc_id)
            if row is None or row.get("hash") != version:
                self._purge(doc_id, version)
                swept += 1
                log.info("swept an unfinished version of document %s", doc_id)
            if row is not None and row.get("pending") == version:
                row["pending"] = ""
                if not row.get("hash") and doc_id not in fresh:
                    row.update(status=DocStatus.INTERRUPTED.value, chunks=0)
                self._put_row(doc_id, row)
            self._call(self._writes.delete, ids=[mark])
        return swept

    def _mark(self, doc_id: int, version: str) -> None:
        """This version is being written now (begin_version, each batch of chunks)."""
        self._call(
            self._writes.upsert,
            ids=[f"{doc_id}:{version}"],
            embeddings=[[1.0]],
            metadatas=[{"doc_id": doc_id, "version": version, "touched": self.clock()}],
        )

    def _unmark(self, doc_id: int, version: str) -> None:
        self._call(self._writes.delete, ids=[f"{doc_id}:{version}"])

    def chunk_count(self) -> int:
        self.sync()
        return self.replica.chunk_count()

    def sync(self, force: bool = False) -> None:
        """Bring the keyword replica to the server's live versions."""
        now = time.monotonic()
        if not force and self.sync_every_s and now - self._synced_at < self.sync_every_s:
            return
        rows = self._doc_rows()
        live = {
            int(i): m
            for i, m in rows.items()
            if i != _META and m.get("hash") and m.get("status") == DocStatus.READY
        }
        replica = self.replica
        with replica._lock:
            db = replica._db
            rows_here = db.execute("SELECT id, hash, path FROM documents").fetchall()
            have = {d: h for d, h, _ in rows_here}
            gone = [d for d, h in have.items() if d not in live or live[d]["hash"] != h]
            wanted = [d for d, m in live.items() if have.get(d) != m["hash"]]
            moved = [
                (self._local_path(live[d]), d)
                for d, h, p in rows_here
                if d in live and live[d]["hash"] == h and self._local_path(live[d]) != from_sql(p)
            ]
            if gone or moved:
                db.execute("BEGIN")
                for d in gone:
                    db.execute("DELETE FROM chunks WHERE doc_id=?", (d,))
                    db.execute("DELETE FROM documents WHERE id=?", (d,))
                for path, d in moved:  # same bytes, new place: citations open the new one
                    db.execute("UPDATE documents SET path=? WHERE id=?", (to_sql(path), d))
                db.execute("COMMIT")
        for start in range(0, len(wanted), 50):
            self._fetch_versions({d: live[d] for d in wanted[start : start + 50]})
        self._synced_at = time.monotonic()

    def _fetch_versions(self, docs: dict[int, dict]) -> None:
        rows = []
        offset = 0
        where = {"doc_id": {"$in": list(docs)}}
        while True:
            got = self._call(
                self._chunks.get,
                where=where,
                include=["metadatas", "documents"],
                limit=_PAGE,
                offset=offset,
            )
            for i, meta, text in zip(got["ids"], got["metadatas"], got["documents"], strict=True):
                d = int(meta["doc_id"])
                if meta.get("version") == docs[d]["hash"]:
                    rows.append(
                        (
                            i,
                            d,
                            meta["version"],
                            int(meta["idx"]),
                            meta.get("page"),
                            int(meta.get("start", 0)),
                            int(meta.get("end", 0)),
                            text or "",
                        )
                    )
            if len(got["ids"]) < _PAGE:
                break
            offset += _PAGE
        counts: dict[int, int] = {}
        for r in rows:
            counts[r[1]] = counts.get(r[1], 0) + 1
        replica = self.replica
        with replica._lock:
            db = replica._db
            db.execute("BEGIN")
            for d, meta in docs.items():
                if counts.get(d, 0) != int(meta.get("chunks", 0)):
                    continue  # replaced while we read: the next sync takes the new one
                db.execute("DELETE FROM chunks WHERE doc_id=?", (d,))
                db.execute(
                    "INSERT OR REPLACE INTO documents (id, path, hash, size, mtime, status, "
                    "chunks, pages, updated) VALUES (?, ?, ?, ?, ?, 'ready', ?, ?, ?)",
                    (
                        d,
                        to_sql(self._local_path(meta)),
                        meta["hash"],
                        int(meta.get("size", 0)),
                        float(meta.get("mtime", 0.0)),
                        int(meta.get("chunks", 0)),
                        int(meta.get("pages", 0)),
                        time.time(),
                    ),
                )
                db.executemany(
                    'INSERT OR REPLACE INTO chunks (id, doc_id, version, idx, page, start, "end", '
                    "text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [r for r in rows if r[1] == d],
                )
            db.execute("COMMIT")

    def hits_for_ids(self, ids: Sequence[str]) -> dict[str, Hit]:
        return self.replica.hits_for_ids(ids)

    def keyword_search(self, text: str, k: int) -> list[str]:
        return [i for i, _ in self.keyword_search_scored(text, k)]

    def keyword_search_scored(self, text: str, k: int) -> list[tuple[str, float]]:
        """BM25 over the live chunks, in the replica brought up to date first."""
        self.sync()
        return self.replica.keyword_search_scored(text, k)

    def term_frequency(self, term: str) -> int:
        return self.replica.term_frequency(term)

    def best_similarities(self, vectors: np.ndarray) -> list[float]:
        if len(vectors) == 0:
            return []
        result = self._call(
            self._chunks.query,
            query_embeddings=[v.tolist() for v in vectors],
            n_results=1,
            include=["distances"],
        )
        return [1.0 - d[0] if d else 0.0 for d in result["distances"]]

    def vector_search(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        result = self._call(
            self._chunks.query,
            query_embeddings=[vector.tolist()],
            n_results=k,
            include=["distances"],
        )
        return [(i, 1.0 - d) for i, d in zip(result["ids"][0], result["distances"][0], strict=True)]

    # ------------------------------------------------------------------ writing
    def begin_version(self, path: str, version: str, size: int, mtime: float) -> int:
        shared = self.paths.to_shared(path)
        doc_id, meta = self._find(shared)
        meta = meta or {
            "path": path_for_meta(shared),
            "hash": "",
            "status": "indexing",
            "chunks": 0,
            "pages": 0,
        }
        meta.update(pending=version, size=size, mtime=mtime)
        self._mark(doc_id, version)  # first: a sweep meanwhile sees a live writer
        self._put_row(doc_id, meta)
        return doc_id

    def add_chunks(
        self, doc_id: int, version: str, chunks: Sequence[ChunkRecord], vectors: np.ndarray
    ) -> None:
        if not chunks:
            return
        metas = []
        for c in chunks:
            meta = {"doc_id": doc_id, "version": version, "idx": c.idx, "start": c.start}
            meta["end"] = c.end
            if c.page is not None:
                meta["page"] = c.page
            metas.append(meta)
        self._mark(doc_id, version)
        self._call(
            self._chunks.upsert,
            ids=[chunk_id(doc_id, version, c.idx) for c in chunks],
            embeddings=np.asarray(vectors, dtype=np.float32),
            metadatas=metas,
            documents=[c.text for c in chunks],
        )

    def _version_count(self, doc_id: int, version: str) -> int:
        got = self._call(
            self._chunks.get,
            where={"$and": [{"doc_id": doc_id}, {"version": version}]},
            include=[],
        )
        return len(got["ids"])

    def commit_version(self, doc_id: int, version: str, chunks: int, pages: int) -> None:
        """Make `version` live once the server holds all its chunks; then drop the old one."""
        held = self._version_count(doc_id, version)
        if held != chunks:
            raise ServerUnavailable(
                f"The team library holds {held} of this version's {chunks} passages (another "
                "workstation replaced it meanwhile, or the server lost writes): add the file again."
            )
        meta = self._doc_row(doc_id) or {}
        old = meta.get("hash") or ""
        meta.update(
            hash=version,
            pending="",
            status=DocStatus.READY.value,
            error="",
            chunks=chunks,
            pages=pages,
        )
        self._put_row(doc_id, meta)
        self._unmark(doc_id, version)
        if old and old != version:
            self._purge(doc_id, old)

    def _purge(self, doc_id: int, version: str) -> None:
        """Delete a version's chunks, unless it is the live one when asked again: another
        workstation's commit, read before ours was written, may have made it live meanwhile."""
        row = self._doc_row(doc_id) or {}
        if row.get("hash") == version:
            return
        self._call(self._chunks.delete, where={"$and": [{"doc_id": doc_id}, {"version": version}]})

    def abandon_version(self, doc_id: int, version: str, status: str, error: str | None) -> None:
        meta = self._doc_row(doc_id) or {}
        if meta.get("hash") != version:  # never delete what another workstation made live
            self._purge(doc_id, version)
        if meta.get("pending") == version:
            meta["pending"] = ""
        if not meta.get("hash"):
            meta.update(status=status, chunks=0)
        meta["error"] = error or ""
        if meta.get("path"):
            self._put_row(doc_id, meta)
        self._unmark(doc_id, version)

    def record_unreadable(
        self, path: str, status: str, error: str, size: int = 0, mtime: float = 0.0
    ) -> None:
        shared = self.paths.to_shared(path)
        doc_id, meta = self._find(shared)
        meta = meta or {"path": path_for_meta(shared), "hash": "", "chunks": 0, "pages": 0}
        if not meta.get("hash"):
            meta.update(status=status, size=size, mtime=mtime)
        meta["error"] = error
        self._put_row(doc_id, meta)

    def note_stat(self, doc_id: int, size: int, mtime: float) -> None:
        meta = self._doc_row(doc_id)
        if meta is not None:
            meta.update(size=size, mtime=mtime)
            self._put_row(doc_id, meta)

    def move_document(self, doc_id: int, new_path: str, size: int, mtime: float) -> None:
        """The file was moved or renamed (same bytes): its row names the new place."""
        meta = self._doc_row(doc_id)
        if meta is not None:
            meta.update(path=path_for_meta(self.paths.to_shared(new_path)), size=size, mtime=mtime)
            self._put_row(doc_id, meta)

    # Folders kept in sync are this workstation's own (they are paths on this computer): kept
    # in the replica's database, never on the server.
    def sources(self):
        return self.replica.sources()

    def add_source(self, path: str, device: int | None) -> bool:
        return self.replica.add_source(path, device)

    def update_source(self, path: str, **values) -> None:
        self.replica.update_source(path, **values)

    def forget_source(self, path: str) -> bool:
        return self.replica.forget_source(path)

    def remove(self, path: str) -> bool:
        """The documents row first (no client sees it after its next search), then its chunks."""
        doc_id, meta = self._find(self.paths.to_shared(path))
        if meta is None:
            return False
        self._call(self._docs.delete, ids=[str(doc_id)])
        self._call(self._chunks.delete, where={"doc_id": doc_id})
        return True

    def reset(self) -> None:
        """Forget every vector and chunk (a re-index with another embedder), for the team."""
        for i, meta in self._doc_rows().items():
            if i != _META:
                meta.update(hash="", pending="", status=DocStatus.QUEUED.value, chunks=0)
                self._put_row(int(i), meta)
        self._call(self._docs.delete, ids=[_META])
        self._call(self._client.delete_collection, CHUNKS)
        self._chunks_col = self._call(
            self._client.get_or_create_collection,
            CHUNKS,
            embedding_function=None,
            metadata={"hnsw:space": "cosine"},
        )

    def verify(self) -> list[str]:
        """Live documents whose chunks on the server do not match their count."""
        problems = []
        for row in self.documents():
            if row.status == DocStatus.READY and row.hash:
                n = self._version_count(row.id, row.hash)
                if n != row.chunks:
                    problems.append(f"{row.path}: {n} chunks stored, {row.chunks} recorded")
        return problems


class _Guarded:
    """A server collection whose connection failures read as ServerUnavailable."""

    def __init__(self, collection, wrap: Callable[[Exception], Exception]) -> None:
        self._collection = collection
        self._wrap = wrap

    def __getattr__(self, name: str):
        attr = getattr(self._collection, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            try:
                return attr(*args, **kwargs)
            except (ValueError, TypeError, KeyError):
                raise
            except Exception as exc:
                raise self._wrap(exc) from None

        return call


def library_for(home: Path, settings) -> RemoteLibrary:
    """The team library the settings name (library_server, library_token, library_path_map)."""
    return RemoteLibrary(
        home,
        settings.library_server,
        settings.library_token,
        settings.library_path_map,
        settings.allow_insecure_http,
    )


def _close_client(client) -> None:
    """Close a chromadb HttpClient, and its HTTP session once no other client in this process
    shares it: chromadb (1.5) stops the shared System with its last client but leaves the
    session's connection open, half-closed, for the rest of the process."""
    try:
        from chromadb.api.shared_system_client import SharedSystemClient

        server = getattr(client, "_server", None)
        client.close()
        if client._identifier not in SharedSystemClient._identifier_to_system:
            session = getattr(server, "_session", None)
            if session is not None:
                session.close()
    except Exception:  # best effort: the process may be ending
        log.debug("closing the team library's client", exc_info=True)
