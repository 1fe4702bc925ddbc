"""The second ranking stage: fusion of two orders, with a real encoder over real text."""

import pytest

from app.core.events import Hit
from app.core.rerank import Reranker, RerankingRetriever, fuse

TEXTS = [
    "The train timetable lists departures from the central station every hour.",
    "Preheat the oven, then bake the bread for forty minutes until golden.",
    "To reset a forgotten password, open the login page and choose 'Forgot password'.",
    "The museum's opening hours change in winter.",
]
QUESTION = "How do I recover my account if I forget my password?"


def hits(texts=TEXTS):
    return [
        Hit(f"c{i}", "/d.txt", None, t, 0.1 * (9 - i), 0, len(t), 1, i) for i, t in enumerate(texts)
    ]


def test_fusion_keeps_a_candidate_both_stages_like_on_top():
    # first in both orders beats first in one and last in the other, whatever the weight
    for w in (0.2, 0.5, 0.8):
        assert fuse(0, 0, w) > fuse(0, 5, w)
        assert fuse(0, 0, w) > fuse(5, 0, w)
    assert fuse(3, 0, 1.0) > fuse(0, 1, 1.0)  # weight 1: the second stage alone decides
    assert fuse(0, 3, 0.0) > fuse(1, 0, 0.0)  # weight 0: the first stage alone decides


def test_the_second_encoder_lifts_the_passage_that_answers(embedder):
    reranked = Reranker(embedder, weight=1.0, depth=10).rerank(QUESTION, hits())
    assert reranked[0].chunk_id == "c2"
    assert sorted(h.chunk_id for h in reranked) == ["c0", "c1", "c2", "c3"]


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


def test_a_reranking_retriever_asks_the_first_stage_for_depth_hits(embedder):
    class FirstStage:
        min_similarity = 0.2

        def __init__(self):
            self.asked = []

        def search(self, query, k=5):
            self.asked.append(k)
            return hits()[:k]

    first = FirstStage()
    retriever = RerankingRetriever(first, Reranker(embedder, weight=1.0, depth=4))
    found = retriever.search(QUESTION, k=2)
    assert first.asked == [4]
    assert [h.chunk_id for h in found[:1]] == ["c2"] and len(found) == 2
    assert retriever.min_similarity == 0.2  # the rest is the first stage's
