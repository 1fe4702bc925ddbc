"""Blending, merging and packing: the pure logic around the stores."""

import pytest

from app.core.events import Hit
from app.core.prompt import pack
from app.core.retrieval import blend, merge_neighbours


def hit(idx, start, end, text, score=0.5, doc=1, page=1):
    return Hit(f"c{doc}-{idx}", "/x.pdf", page, text, score, start, end, doc, idx)


def test_a_keyword_match_breaks_a_near_tie_but_cannot_bury_a_clearly_closer_passage():
    similarity = {"close": 0.80, "a": 0.60, "b": 0.58, "kw_only": 0.30}
    keyword = [("b", 12.0), ("kw_only", 11.0), ("a", 2.0)]  # BM25, best first
    ranked = [i for i, _ in blend(similarity, keyword, weight=0.1)]
    assert ranked == ["close", "b", "a", "kw_only"]
    scores = dict(blend(similarity, keyword, weight=0.1))
    assert scores["b"] == pytest.approx(0.58 + 0.1)  # the best keyword score gets the full bonus
    assert scores["a"] == pytest.approx(0.60)  # the worst keyword candidate gets none
    assert scores["close"] == 0.80  # no keyword match: its similarity alone


def test_blend_without_keyword_hits_is_the_vector_ranking():
    similarity = {"a": 0.2, "b": 0.9, "c": 0.5}
    assert [i for i, _ in blend(similarity, [])] == ["b", "c", "a"]
    assert [i for i, _ in blend(similarity, [("a", 3.0)], weight=0.1)] == ["b", "c", "a"]
    # one keyword candidate (no spread to scale by) gets the whole bonus
    assert dict(blend(similarity, [("a", 3.0)], weight=0.5))["a"] == pytest.approx(0.7)


def test_overlapping_neighbours_merge_without_repeating_text():
    a = hit(0, 0, 20, "The cat sat on the m")
    b = hit(1, 15, 30, "the mat quietly", score=0.9)
    merged = merge_neighbours([a, b])
    assert len(merged) == 1
    assert merged[0].text == "The cat sat on the mat quietly"
    assert merged[0].score == 0.9
    assert (merged[0].start, merged[0].end) == (0, 30)


def test_chunks_of_other_pages_or_documents_stay_apart():
    hits = [
        hit(0, 0, 5, "a"),
        hit(1, 0, 5, "b", page=2),
        hit(2, 0, 5, "c", doc=2),
        hit(5, 9, 12, "d"),
    ]
    assert len(merge_neighbours(hits)) == 4


def test_pack_keeps_rank_order_within_budget():
    hits = [hit(i, 0, 1, "w " * n) for i, n in enumerate([10, 100, 10])]
    packed = pack(hits, lambda t: len(t.split()), budget=80)
    assert [h.chunk_index for h in packed] == [0, 2]
