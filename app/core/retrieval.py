"""Question -> ranked passages: vector search and BM25 keyword search, blended, neighbours merged.

Vector search finds paraphrases; the keyword index finds rare exact terms (error codes, names,
function names) that embeddings blur. Both candidate lists are pooled, and each candidate is
ranked by its cosine similarity to the question plus a bounded keyword bonus (its BM25 score
scaled to 0..1 among the keyword candidates, times KEYWORD_WEIGHT). A keyword match lifts a
passage over near-ties; it cannot bury a clearly closer one. On resources/bench/qa.jsonl this
beat reciprocal rank fusion, which ranks a keyword-only hit as high as the best vector hit
(measured in bench/NOTES.md). Every returned hit carries its cosine similarity as `score`,
which is what the relevance gate and the user see.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from app.core.embedding import Embedder
from app.core.events import Hit
from app.core.gate import RelevanceGate, Verdict
from app.core.library import Library

KEYWORD_WEIGHT = 0.1

# One thread for keyword searches (started on first use): SQLite works with the GIL released
# while the caller embeds the question and searches the vectors, so a search costs the longer of
# the two, not their sum.
_KEYWORDS = ThreadPoolExecutor(1, thread_name_prefix="confidant-keywords")


def blend(
    similarity: dict[str, float],
    keyword: Sequence[tuple[str, float]],
    weight: float = KEYWORD_WEIGHT,
) -> list[tuple[str, float]]:
    """Rank ids by cosine similarity + weight * (BM25 score min-max scaled over `keyword`).

    `similarity` must hold every id (vector and keyword candidates); `keyword` is (id, BM25
    score, higher is better), best first. Returns (id, blended score), best first."""
    scores = dict(similarity)
    if keyword:
        top = max(b for _, b in keyword)
        low = min(b for _, b in keyword)
        span = top - low
        for item, b in keyword:
            scores[item] = scores.get(item, 0.0) + weight * ((b - low) / span if span else 1.0)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)


def merge_neighbours(hits: Sequence[Hit]) -> list[Hit]:
    """Merge hits that are consecutive chunks of the same page into one passage, keeping the
    better rank and score, so the model does not read the same overlapping text twice."""
    merged: list[Hit] = []
    for hit in hits:
        for i, kept in enumerate(merged):
            if (
                kept.doc_id == hit.doc_id
                and kept.page == hit.page
                and abs(kept.chunk_index - hit.chunk_index) == 1
            ):
                first, second = (kept, hit) if kept.start <= hit.start else (hit, kept)
                overlap = max(0, first.end - second.start)
                text = first.text + (second.text[overlap:] if overlap else "\n" + second.text)
                merged[i] = replace(
                    kept,
                    text=text,
                    start=first.start,
                    end=max(first.end, second.end),
                    score=max(kept.score, hit.score),
                )
                break
        else:
            merged.append(hit)
    return merged


class Retriever:
    """Hybrid search over a Library with the library's own embedder."""

    def __init__(
        self,
        library: Library,
        embedder: Embedder,
        candidates: int = 40,
        min_similarity: float = 0.2,
        gate: RelevanceGate | None = None,
    ) -> None:
        self.library = library
        self.embedder = embedder
        self.candidates = candidates
        self.min_similarity = min_similarity
        self.gate = gate

    def search(self, query: str, k: int = 5) -> list[Hit]:
        """Up to k passages, best first, each with its cosine similarity as `score`."""
        query = query.strip()
        if not query:
            return []
        keywords = _KEYWORDS.submit(self.library.keyword_search_scored, query, self.candidates)
        vector = self.embedder.embed_query(query)
        by_vector = self.library.vector_search(vector, self.candidates)
        by_keyword = keywords.result()
        similarity = dict(by_vector)
        missing = [i for i, _ in by_keyword if i not in similarity]
        if missing:  # keyword-only candidates: their similarity, so every score means the same
            similarity.update(self._similarities(missing, vector))
        top_ids = [i for i, _ in blend(similarity, by_keyword)[: k * 3]]
        live = self.library.hits_for_ids(top_ids)
        hits = [
            replace(live[i], score=round(float(similarity.get(i, 0.0)), 4))
            for i in top_ids
            if i in live
        ]
        return merge_neighbours(hits)[:k]

    def relevant(self, hits: Sequence[Hit]) -> list[Hit]:
        """Hits close enough to the question to be worth showing the model at all (a floor
        under single passages; whether the library answers the question is judge()'s call)."""
        return [h for h in hits if h.score >= self.min_similarity]

    def judge(self, question: str, hits: Sequence[Hit]) -> Verdict:
        """Whether `hits` (this question's, best first) answer it: the relevance gate's verdict,
        or, without a gate, whether any hit reaches min_similarity."""
        if self.gate is not None:
            return self.gate.judge(question, hits)
        best = max((h.score for h in hits), default=0.0)
        ok = best >= self.min_similarity
        return Verdict(ok, best, 0.0)

    def _similarities(self, ids: list[str], vector: np.ndarray) -> dict[str, float]:
        got = self.library.collection.get(ids=ids, include=["embeddings"])
        return {
            i: float(np.dot(np.asarray(e, dtype=np.float32), vector))
            for i, e in zip(got["ids"], got["embeddings"], strict=True)
        }
