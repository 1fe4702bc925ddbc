"""Copy a local library into a team library as it is: the same chunks and the same vectors,
nothing read or embedded again (a team's first library, or the bench's like-for-like check)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.core.library import ChunkRecord, Library, chunk_id
from app.core.status import DocStatus
from app.core.team.library import RemoteLibrary

_BATCH = 500


def push_library(
    local: Library, remote: RemoteLibrary, progress: Callable[[str, int], None] | None = None
) -> int:
    """Every live document of `local` into `remote`; returns the chunks written."""
    model = local.embedder()
    if model:
        remote.check_embedder(model)
    written = 0
    for doc in local.documents():
        if doc.status != DocStatus.READY or not doc.hash:
            continue
        with local._lock:
            rows = local._db.execute(
                'SELECT idx, page, start, "end", text FROM chunks WHERE doc_id=? AND version=? '
                "ORDER BY idx",
                (doc.id, doc.hash),
            ).fetchall()
        new_id = remote.begin_version(doc.path, doc.hash, doc.size, doc.mtime)
        for at in range(0, len(rows), _BATCH):
            part = [ChunkRecord(*r) for r in rows[at : at + _BATCH]]
            ids = [chunk_id(doc.id, doc.hash, c.idx) for c in part]
            got = local.collection.get(ids=ids, include=["embeddings"])
            by_id = dict(zip(got["ids"], got["embeddings"], strict=True))
            vectors = np.asarray([by_id[i] for i in ids], dtype=np.float32)
            remote.add_chunks(new_id, doc.hash, part, vectors)
        remote.commit_version(new_id, doc.hash, len(rows), doc.pages)
        written += len(rows)
        if progress is not None:
            progress(doc.path, len(rows))
    return written
