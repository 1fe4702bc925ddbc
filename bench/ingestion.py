"""Ingestion throughput: a folder into a throw-away library, timed, with the peak memory."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.stats import PeakRss, max_rss_self


@dataclass
class IngestResult:
    files: int
    pages: int
    chunks: int
    seconds: float  # the whole run, model load excluded
    load_s: float  # loading the embedding model
    pages_per_s: float
    chunks_per_s: float
    peak_rss_mb: float  # this process and its children, sampled
    max_rss_self_mb: float  # ru_maxrss of this process alone
    counts: dict
    home: str
    failed: list[str]
    stages: dict  # seconds of the ingesting thread per stage (IngestFinished.stages)

    def as_dict(self) -> dict:
        return asdict(self)


def bench_ingest(
    folder: str | Path, home: str | Path, *, embedder=None, options=None, vector_process=True
):
    """Ingest every supported file under `folder` into a library at `home` (a CONFIDANT_HOME-like
    directory, normally a fresh temporary one). Returns (IngestResult, Library, Embedder)."""
    from app.config import default_embedder_path
    from app.core.cancel import CancelToken
    from app.core.embedding import Embedder
    from app.core.events import FileDone, IngestFinished
    from app.core.ingest import IngestOptions, Ingestor
    from app.core.library import Library

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    with PeakRss() as rss:
        started = time.perf_counter()
        if embedder is None:
            embedder = Embedder(default_embedder_path())
        embedder.load()
        load_s = time.perf_counter() - started
        library = Library(home, vector_process=vector_process)
        ingestor = Ingestor(library, embedder, options or IngestOptions())
        finished = None
        failed: list[str] = []
        t0 = time.perf_counter()
        for event in ingestor.run([str(folder)], CancelToken()):
            if isinstance(event, FileDone) and event.status in ("failed", "skipped"):
                failed.append(f"{Path(event.path).name}: {event.status}: {event.error}")
            elif isinstance(event, IngestFinished):
                finished = event
        seconds = time.perf_counter() - t0
    pages = finished.pages if finished else 0
    chunks = finished.chunks if finished else 0
    counts = finished.counts if finished else {}
    result = IngestResult(
        files=sum(counts.values()),
        pages=pages,
        chunks=chunks,
        seconds=round(seconds, 3),
        load_s=round(load_s, 3),
        pages_per_s=round(pages / seconds, 2) if seconds else 0.0,
        chunks_per_s=round(chunks / seconds, 2) if seconds else 0.0,
        peak_rss_mb=round(rss.peak / 2**20, 1),
        max_rss_self_mb=round(max_rss_self() / 2**20, 1),
        counts={k: v for k, v in counts.items() if v},
        home=str(home),
        failed=failed,
        stages=dict(finished.stages) if finished else {},
    )
    return result, library, embedder
