"""Fusion, merging and packing: the pure logic around the stores."""

from app.core.events import Hit
from app.core.retrieval import merge_neighbours, pack, reciprocal_rank_fusion


def hit(idx, start, end, text, score=0.5, doc=1, page=1):
    return Hit(f"c{doc}-{idx}", "/x.pdf", page, text, score, start, end, doc, idx)


def test_rrf_rewards_agreement_between_rankings():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d", "e"]])
    ids = [i for i, _ in fused]
    assert ids[0] == "b"  # second in one and first in the other beats first in one
    assert set(ids) == {"a", "b", "c", "d", "e"}
    assert ids.index("a") < ids.index("d") < ids.index("e")


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
