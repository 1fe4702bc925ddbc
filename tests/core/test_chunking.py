"""Chunking with the embedder's real tokenizer: sizes, overlap, words never cut, exact offsets."""

import itertools

import pytest

from app.core.chunking import chunk_pages, split_text
from app.core.documents.base import Page

WORDS = (
    "antidisestablishmentarianism photosynthesis the quarterly revenue of Acme grew "
    "supercalifragilistic onomatopoeia tintinnabulation"
).split()


@pytest.fixture(scope="module")
def tokenizer(embedder):
    return embedder.tokenizer


def _text(n_words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] + str(i) for i in range(n_words))


def test_chunks_fit_the_token_budget_and_never_cut_words(tokenizer):
    text = _text(600)
    chunks = list(chunk_pages([Page(3, text)], tokenizer, max_tokens=64, overlap=16))
    assert len(chunks) > 5
    words = set(text.split())
    for c in chunks:
        n = len(tokenizer(c.text, add_special_tokens=False)["input_ids"])
        assert n <= 64
        assert c.page == 3
        assert text[c.start : c.end] == c.text  # offsets point at exactly this text
        assert all(w in words for w in c.text.split())  # whole words only


def test_neighbouring_chunks_overlap(tokenizer):
    chunks = list(chunk_pages([Page(1, _text(300))], tokenizer, max_tokens=50, overlap=12))
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "the next chunk starts inside the previous one"
        assert b.start > a.start


def test_every_word_is_in_some_chunk(tokenizer):
    text = _text(250)
    chunks = list(chunk_pages([Page(None, text)], tokenizer, max_tokens=40, overlap=0))
    covered = " ".join(c.text for c in chunks).split()
    assert covered == text.split()


def test_chunks_never_straddle_pages_and_blank_pages_yield_nothing(tokenizer):
    pages = [Page(1, "alpha beta gamma"), Page(2, "   \n "), Page(3, "delta epsilon")]
    chunks = list(chunk_pages(pages, tokenizer, max_tokens=64, overlap=8))
    assert [(c.page, c.text) for c in chunks] == [(1, "alpha beta gamma"), (3, "delta epsilon")]


def test_a_single_word_longer_than_the_budget_is_cut_rather_than_looping():
    offsets = [(i, i + 1) for i in range(10)]  # one 10-token "word"
    windows = list(split_text("abcdefghij", offsets, max_tokens=4, overlap=2))
    assert windows[0] == (0, 4, 4)
    assert windows[-1][1] == 10
    assert len(windows) < 10
