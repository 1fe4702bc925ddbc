"""The second ranking stage: a blend of two stages' standardised scores, with a real encoder."""

import numpy as np
import pytest

from app.core.events import Hit
from bench.rerank import Reranker, RerankingRetriever, fuse, zscore

TEXTS = [
    "The train timetable lists departures from the central station every hour.",
    "Preheat the oven, then bake the bread for forty minutes until golden.",
    "To reset a forgotten password, open the login page and choose 'Forgot password'.",
    "The museum's opening hours change in winter.",
]
QUESTION = "How do I recover my account if I forget my password?"


def hits(texts=TEXTS):
    return [
        Hit(f"c{i}", "/d.txt", None, t, round(0.9 - 0.1 * i, 2), 0, len(t), 1, i)
        for i, t in enumerate(texts)
    ]


def test_fusion_standardises_each_stage_then_weighs_them():
    first, second = [10.0, 20.0, 30.0], [0.3, 0.2, 0.1]  # opposite orders, different scales
    assert list(zscore(first)) == pytest.approx([-1.2247, 0.0, 1.2247], abs=1e-4)
    assert np.argmax(fuse(first, second, 0.3)) == 2  # the first stage weighs more
    assert np.argmax(fuse(first, second, 0.7)) == 0  # the second stage weighs more
    assert list(fuse(first, second, 0.5)) == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert list(zscore([0.4, 0.4])) == [0.0, 0.0]  # no spread: no opinion


def test_the_second_encoder_lifts_the_passage_that_answers(embedder):
    reranked = Reranker(embedder, weight=0.9, depth=10).rerank(QUESTION, hits())
    assert reranked[0].chunk_id == "c2"
    assert sorted(h.chunk_id for h in reranked) == ["c0", "c1", "c2", "c3"]


def test_a_small_weight_keeps_a_clear_first_stage_winner(embedder):
    first = [5.0, 0.0, 0.1, 0.0]  # the first stage is sure of c0
    reranked = Reranker(embedder, weight=0.3, depth=10).rerank(QUESTION, hits(), first)
    assert reranked[0].chunk_id == "c0"
    assert reranked[1].chunk_id == "c2"  # the second stage still orders the rest


def test_scores_and_everything_but_the_order_are_the_first_stages(embedder):
    before = {h.chunk_id: h for h in hits()}
    for h in Reranker(embedder, weight=0.7, depth=10).rerank(QUESTION, hits()):
        assert h == before[h.chunk_id]  # the cosine the gate reads stays the first stage's


def test_only_the_first_depth_hits_are_reordered(embedder):
    reranked = Reranker(embedder, weight=1.0, depth=2).rerank(QUESTION, hits())
    assert [h.chunk_id for h in reranked][2:] == ["c2", "c3"]  # c2 is past the depth: untouched
    reranked = Reranker(embedder, weight=1.0, depth=3).rerank(QUESTION, hits())
    assert reranked[0].chunk_id == "c2"


def test_weight_zero_or_a_single_hit_changes_nothing(embedder):
    assert Reranker(embedder, weight=0.0).rerank(QUESTION, hits()) == hits()
    assert Reranker(embedder, weight=1.0).rerank(QUESTION, hits()[:1]) == hits()[:1]
    assert Reranker(embedder).rerank(QUESTION, []) == []
    with pytest.raises(ValueError):
        Reranker(embedder, weight=1.5)


class FirstStage:
    min_similarity = 0.2

    def __init__(self):
        self.asked = []

    def search(self, query, k=5):
        self.asked.append(k)
        return hits()[:k]


def test_a_reranking_retriever_asks_the_first_stage_for_depth_hits(embedder):
    first = FirstStage()
    retriever = RerankingRetriever(first, Reranker(embedder, weight=1.0, depth=4))
    found = retriever.search(QUESTION, k=2)
    assert first.asked == [4]
    assert [h.chunk_id for h in found[:1]] == ["c2"] and len(found) == 2
    assert retriever.min_similarity == 0.2  # the rest is the first stage's


def test_a_reranking_retriever_blends_the_first_stages_own_scores(embedder):
    class Scored(FirstStage):
        def search_scored(self, query, k):
            self.asked.append(k)
            return list(zip(hits()[:k], [5.0, 0.0, 0.1, 0.0][:k], strict=True))

    first = Scored()
    found = RerankingRetriever(first, Reranker(embedder, weight=0.3, depth=4)).search(QUESTION, 2)
    assert first.asked == [4]
    assert [h.chunk_id for h in found] == ["c0", "c2"]
