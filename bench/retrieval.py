"""Retrieval latency (query embedding included) and retrieval quality (hit@k on a QA set)."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.stats import percentile

# Questions used for latency when no QA file is given (plain office-style wording).
DEFAULT_QUERIES = [
    "How do I install the package from source?",
    "What does the function return when the input is empty?",
    "Which option sets the size of the output?",
    "How are missing values handled when reading a file?",
    "What is the difference between a list and a vector?",
    "How can I change the colour of the lines in a plot?",
    "Where are the settings stored?",
    "How do I read data from a spreadsheet?",
    "What happens when the memory limit is reached?",
    "How do I write a loop over the rows of a table?",
    "Which environment variable controls the library path?",
    "How do I save the picture as a PDF?",
]

_COMMON = (
    "the of and to in is that for it as with was on be by this are or from at an which data "
    "function value file output input set plot option list table default number name type "
    "return error use used can may see also example method object string vector matrix "
    "package install system memory time size line colour format read write variable"
).split()


@dataclass
class LatencyResult:
    chunks: int
    queries: int
    repeats: int
    vectors: str  # where the library's vectors came from
    p50_ms: float
    p95_ms: float
    mean_ms: float
    parts_p50_ms: dict  # embed / vector / keyword / hits, measured separately

    def as_dict(self) -> dict:
        return asdict(self)


def _pseudo_words(rng: random.Random, n: int) -> list[str]:
    syll = ["ka", "lo", "mi", "ter", "van", "dor", "ph", "zu", "rex", "qui", "sel", "nox"]
    return ["".join(rng.choice(syll) for _ in range(rng.randint(2, 4))) for _ in range(n)]


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """n passages of ~120 words: Zipf-distributed over common words and 20,000 rare ones, so
    keyword queries meet long posting lists as in a real library."""
    rng = random.Random(seed)
    vocab = _COMMON + _pseudo_words(rng, 20000)
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(vocab))]
    texts = []
    for _ in range(n):
        words = rng.choices(vocab, weights=weights, k=120)
        texts.append(" ".join(words).capitalize() + ".")
    return texts


def build_synthetic_library(
    library,
    n_chunks: int,
    dims: int,
    vectors: str = "random",
    embedder=None,
    per_doc: int = 1000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> str:
    """Fill `library` with n_chunks chunks of generated text (real FTS rows).

    vectors="random": random unit vectors (fast; what the label says in the output).
    vectors="minilm": the embedder's vectors of the generated text (slow on a CPU).
    """
    from app.core.library import ChunkRecord

    rng = np.random.default_rng(seed)
    made = 0
    doc_no = 0
    while made < n_chunks:
        count = min(per_doc, n_chunks - made)
        texts = synthetic_texts(count, seed=seed + doc_no)
        version = f"{doc_no:064x}"
        doc = library.begin_version(f"/synthetic/doc-{doc_no:05d}.txt", version, 1, 0.0)
        for start in range(0, count, 500):
            part = texts[start : start + 500]
            if vectors == "minilm":
                vecs = embedder.embed(part)
            else:
                vecs = rng.normal(size=(len(part), dims)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            records = [
                ChunkRecord(start + j, (start + j) // 4 + 1, 0, len(t), t)
                for j, t in enumerate(part)
            ]
            library.add_chunks(doc, version, records, vecs)
        library.commit_version(doc, version, count, count // 4 + 1)
        made += count
        doc_no += 1
        if progress:
            progress(made)
    return (
        "random unit vectors + generated text in the keyword index"
        if vectors == "random"
        else ("MiniLM vectors of generated text")
    )


def bench_latency(
    retriever, queries: Sequence[str], repeats: int = 3, vectors: str = "ingested documents"
) -> LatencyResult:
    """Time Retriever.search end to end (query embedding included), and each part alone."""
    library, embedder = retriever.library, retriever.embedder
    retriever.search(queries[0])  # warm-up: model, Chroma index, SQLite pages
    totals: list[float] = []
    parts: dict[str, list[float]] = {"embed": [], "vector": [], "keyword": [], "hits": []}
    for _ in range(repeats):
        for q in queries:
            t0 = time.perf_counter()
            retriever.search(q)
            totals.append((time.perf_counter() - t0) * 1000)
    for q in queries:
        t0 = time.perf_counter()
        vec = embedder.embed_query(q)
        t1 = time.perf_counter()
        by_vector = library.vector_search(vec, retriever.candidates)
        t2 = time.perf_counter()
        by_keyword = library.keyword_search(q, retriever.candidates)
        t3 = time.perf_counter()
        library.hits_for_ids([i for i, _ in by_vector][:15] + by_keyword[:15])
        t4 = time.perf_counter()
        for name, a, b in (("embed", t0, t1), ("vector", t1, t2), ("keyword", t2, t3)):
            parts[name].append((b - a) * 1000)
        parts["hits"].append((t4 - t3) * 1000)
    return LatencyResult(
        chunks=library.chunk_count(),
        queries=len(queries),
        repeats=repeats,
        vectors=vectors,
        p50_ms=round(percentile(totals, 50), 2),
        p95_ms=round(percentile(totals, 95), 2),
        mean_ms=round(sum(totals) / len(totals), 2),
        parts_p50_ms={k: round(percentile(v, 50), 2) for k, v in parts.items()},
    )


# ------------------------------------------------------------------ quality
def load_qa(path: str | Path) -> list[dict]:
    items = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        missing = {"question", "file", "pages"} - set(item)
        if missing:
            raise ValueError(f"{path}:{n}: missing {', '.join(sorted(missing))}")
        items.append(item)
    return items


_WORD = re.compile(r"[^\W_]+")  # letters and digits: markup like __x__ is no word


def answers(item: dict, path: str, page: int | None, text: str | None = None) -> bool:
    """Does this passage answer the item? Same file (basename), same page where the item gives
    pages (formats without pages give none), and, where it names `evidence`, every word of
    that in the passage (so a passage of the right file that does not answer does not count)."""
    if Path(path).name != item["file"]:
        return False
    pages = item.get("pages") or []
    if pages and page not in {int(p) for p in pages}:
        return False
    evidence = item.get("evidence")
    if evidence and text is not None:
        have = set(_WORD.findall(text.lower()))
        return all(w in have for w in _WORD.findall(evidence.lower()))
    return True


def score_hits(
    items: Sequence[dict],
    search: Callable[[str, int], Sequence[tuple]],
    k: int = 5,
) -> dict:
    """hit@1 and hit@k: is an answer among the first 1 / k results? `search(question, k)`
    returns (path, page) or (path, page, text) tuples, best first (see answers())."""
    hit1 = hitk = 0
    misses = []
    for item in items:
        found = [answers(item, *hit) for hit in search(item["question"], k)][:k]
        first = bool(found) and found[0]
        any_k = any(found)
        hit1 += first
        hitk += any_k
        if not any_k:
            misses.append(item["question"])
    n = len(items) or 1
    return {
        "questions": len(items),
        "hit@1": round(hit1 / n, 3),
        f"hit@{k}": round(hitk / n, 3),
        "missed": misses,
    }


def bench_quality(retriever, qa_path: str | Path, k: int = 5) -> dict:
    items = load_qa(qa_path)

    def search(question: str, k: int):
        return [(h.path, h.page, h.text) for h in retriever.search(question, k=k)]

    return score_hits(items, search, k)


# ------------------------------------------------------------------ latency while busy
def bench_latency_while_ingesting(
    retriever, queries: Sequence[str], folder: str | Path, scratch: str | Path
) -> dict:
    """Search latency while the same embedder ingests `folder` into a scratch library, as in
    the window, where a question is asked while files are being added. Questions are asked
    back to back for as long as the ingestion runs (at least one round), and the query
    embedding is timed apart, since it is the part that competes for the cores."""
    import threading

    from bench.ingestion import bench_ingest

    embedder = retriever.embedder
    retriever.search(queries[0])  # warm-up, before the ingestion starts
    outcome: dict = {}

    def ingest() -> None:
        try:
            outcome["ingest"] = bench_ingest(folder, scratch, embedder=embedder)[0].as_dict()
        except Exception as exc:  # reported, not raised: the latencies are still worth having
            outcome["error"] = repr(exc)

    worker = threading.Thread(target=ingest, name="bench-ingest")
    worker.start()
    time.sleep(2.0)  # the reader and the streams get going
    totals: list[float] = []
    embeds: list[float] = []
    while worker.is_alive() or not totals:
        for q in queries:
            t0 = time.perf_counter()
            embedder.embed_query(q)
            t1 = time.perf_counter()
            retriever.search(q)
            t2 = time.perf_counter()
            embeds.append((t1 - t0) * 1000)
            totals.append((t2 - t1) * 1000)
            if not worker.is_alive() and totals:
                break
    worker.join()
    return {
        "queries": len(totals),
        "p50_ms": round(percentile(totals, 50), 2),
        "p95_ms": round(percentile(totals, 95), 2),
        "embed_p50_ms": round(percentile(embeds, 50), 2),
        "embed_p95_ms": round(percentile(embeds, 95), 2),
        "ingest": outcome.get("ingest"),
        "error": outcome.get("error"),
    }
