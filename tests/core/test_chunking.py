"""Chunking with the embedder's real tokenizer: sizes, overlap, words never cut, exact offsets."""

import itertools
import pickle

import numpy as np
import pytest

from app.core.chunking import PageTokenizer, chunk_pages, split_text
from app.core.documents.base import Heading, Page

WORDS = (
    "antidisestablishmentarianism photosynthesis the quarterly revenue of Acme grew "
    "supercalifragilistic onomatopoeia tintinnabulation"
).split()


@pytest.fixture(scope="module")
def tokenizer(embedder):
    return PageTokenizer.of(embedder.tokenizer)


def _text(n_words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] + str(i) for i in range(n_words))


def test_chunks_fit_the_token_budget_and_never_cut_words(tokenizer, embedder):
    text = _text(600)
    chunks = list(chunk_pages([Page(3, text)], tokenizer, max_tokens=64, overlap=16))
    assert len(chunks) > 5
    words = set(text.split())
    for c in chunks:
        ids = embedder.tokenizer(c.text, add_special_tokens=False)["input_ids"]
        assert len(ids) <= 64
        assert list(c.ids) == ids  # what the embedder reads is this text's own tokens
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
    assert windows[0] == (0, 4)
    assert windows[-1][1] == 10
    assert len(windows) < 10


def test_a_chunk_never_mixes_two_sections(tokenizer):
    text = f"1 Billing\n{_text(30)}\n1.1 Late fees\n{_text(30)}\n"
    cut = text.index("1.1 Late fees")
    headings = (Heading(0, ("1 Billing",)), Heading(cut, ("1 Billing", "1.1 Late fees")))
    chunks = list(chunk_pages([Page(1, text, headings)], tokenizer, max_tokens=64, overlap=8))
    assert len(chunks) >= 4
    for c in chunks:
        assert c.end <= cut or c.start >= cut, "a chunk straddles two sections"
    assert any(c.start == cut for c in chunks), "the section's first chunk starts at its title"
    covered = " ".join(c.text for c in chunks).split()
    assert set(covered) == set(text.split())  # nothing lost at the cut


def test_a_chapter_title_right_before_its_first_section_stays_with_it(tokenizer):
    text = "2 People\n2.1 Hiring\n" + _text(20)
    headings = (Heading(0, ("2 People",)), Heading(9, ("2 People", "2.1 Hiring")))
    chunks = list(chunk_pages([Page(1, text, headings)], tokenizer, max_tokens=200, overlap=0))
    assert len(chunks) == 1
    assert chunks[0].text.startswith("2 People\n2.1 Hiring")


def test_the_tokenizer_crosses_a_process_boundary_unchanged(tokenizer):
    text = [_text(40), "Ünïcödé naïve café façade", ""]
    assert pickle.loads(pickle.dumps(tokenizer)).encode(text) == tokenizer.encode(text)


def test_chunk_token_ids_embed_as_their_text_does(tokenizer, embedder):
    pages = [Page(1, _text(700)), Page(2, "Late fees: 2% a month after 30 days. Café naïve.")]
    chunks = list(chunk_pages(pages, tokenizer, max_tokens=48, overlap=8))
    assert len(chunks) > embedder.batch_size  # several batches, of several lengths
    assert embedder._frame is not None  # MiniLM takes ids: the texts are not what is embedded
    from_ids = embedder.embed_tokens([c.ids for c in chunks], [c.text for c in chunks])
    from_text = embedder.embed([c.text for c in chunks])
    assert from_ids.shape == from_text.shape == (len(chunks), embedder.dimensions)
    assert np.allclose(np.linalg.norm(from_ids, axis=1), 1.0, atol=1e-3)
    cosines = np.sum(from_ids * from_text, axis=1) / np.linalg.norm(from_text, axis=1)
    assert cosines.min() > 0.998, cosines.min()  # bf16 on CPUs with bf16 units: not bit-equal
    # and they are not all alike: each row is its own chunk's vector, in the order given
    assert np.sum(from_ids[0] * from_text[-1]) < 0.9


def test_token_ids_longer_than_the_model_reads_are_cut_as_encode_cuts_text(tokenizer, embedder):
    ((ids, _offsets),) = tokenizer.encode([_text(400)])
    assert len(ids) > embedder.load().max_seq_length
    from_ids = embedder.embed_tokens([ids], [_text(400)])
    from_text = embedder.embed([_text(400)])  # encode() truncates to max_seq_length
    cosine = float(np.sum(from_ids * from_text) / np.linalg.norm(from_text))
    assert cosine > 0.998, cosine


class _CancelAfter:
    """A CancelToken that turns cancelled after `checks` checks: where the embedder looks."""

    def __init__(self, checks: int) -> None:
        self.left = checks

    def raise_if_cancelled(self) -> None:
        from app.core.cancel import Cancelled

        if self.left == 0:
            raise Cancelled()
        self.left -= 1


def test_stop_is_checked_between_forward_batches_of_one_call(tokenizer, embedder):
    # The ingester hands the embedder 256 chunks at a time (less padding), ~4 s on 2 cores:
    # Stop must not wait for all of them.
    from app.core.cancel import Cancelled

    pages = [Page(1, _text(900))]
    chunks = list(chunk_pages(pages, tokenizer, max_tokens=32, overlap=0))
    batches = -(-len(chunks) // embedder.batch_size)
    assert batches >= 3
    ids, texts = [c.ids for c in chunks], [c.text for c in chunks]
    with pytest.raises(Cancelled):
        embedder.embed_tokens(ids, texts, _CancelAfter(batches - 1))  # the last batch: stop
    done = embedder.embed_tokens(ids, texts, _CancelAfter(batches))  # never asked to stop
    assert done.shape == (len(chunks), embedder.dimensions)


def test_forward_widths_come_in_steps_of_16(tokenizer, embedder):
    # oneDNN compiles and keeps a kernel per input shape: one width per chunk length grew the
    # process by ~350 MB over the benchmark corpus; steps of 16 keep the set of shapes small.
    words = _text(80).split()
    texts = [" ".join(words[:n]) for n in range(1, 80)]  # 79 different lengths
    ids = [tokenizer.encode([t])[0][0] for t in texts]
    assert len({len(x) for x in ids}) > 40
    widths = []
    hook = embedder.load().register_forward_pre_hook(
        lambda _module, args: widths.append(args[0]["input_ids"].shape[1])
    )
    try:
        vectors = embedder.embed_tokens(ids, texts)
    finally:
        hook.remove()
    assert widths and all(w % 16 == 0 for w in widths), widths
    assert len(set(widths)) <= -(-max(len(x) + 2 for x in ids) // 16)
    cosines = np.sum(vectors * embedder.embed(texts), axis=1)
    assert cosines.min() > 0.998  # the padding is masked: same vectors


def test_a_chunk_is_embedded_after_its_section_path(tokenizer, embedder):
    # A section titled "Synopsis" means little alone: its parents lead what is embedded.
    intro = "rclone serve sftp\n\n" + _text(30)
    body = "\n\nSynopsis\n\nRun an SFTP server to serve a remote over SFTP. " + _text(20)
    first = Page(
        1,
        intro + body,
        (
            Heading(0, ("Manual", "rclone serve sftp")),
            Heading(len(intro) + 2, ("Manual", "rclone serve sftp", "Synopsis")),
        ),
        embed_path=True,
    )
    second = Page(2, "More about serving over SFTP. " + _text(10), embed_path=True)
    chunks = list(chunk_pages([first, second], tokenizer, max_tokens=200, overlap=20))
    by_start = {c.text.split()[0]: c for c in chunks}
    assert by_start["rclone"].context == "Manual\n"  # its own title is in its text
    assert by_start["Synopsis"].context == "Manual > rclone serve sftp\n"
    assert by_start["More"].context == "Manual > rclone serve sftp > Synopsis\n"
    for c in chunks:
        assert c.embedded_text == c.context + c.text
        assert first.text[c.start : c.end] == c.text or second.text[c.start : c.end] == c.text
        own = embedder.tokenizer(c.text, add_special_tokens=False)["input_ids"]
        lead = embedder.tokenizer(c.context, add_special_tokens=False)["input_ids"]
        assert list(c.ids) == lead + own  # the vector is of the path, then the passage
    # Pages without any section say nothing more than their text.
    plain = list(chunk_pages([Page(1, _text(30))], tokenizer, max_tokens=200, overlap=20))
    assert (
        plain[0].context == ""
        and list(plain[0].ids)
        == embedder.tokenizer(plain[0].text, add_special_tokens=False)["input_ids"]
    )
