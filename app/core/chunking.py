"""Pages -> chunks sized in the embedder's own tokens, with overlap, never cutting a word.

Each page is tokenized once with character offsets; windows of at most `max_tokens` tokens are cut
at word starts, so each chunk keeps its page and exact character span. Chunks never straddle a
page, which keeps every citation's page number exact, nor a section boundary (where the PDF's
outline says one begins): a chunk holding the end of one question of a FAQ and the start of the
next matches neither well (hit@5 0.68 -> 0.80 over the benchmark questions, app/bench/NOTES.md).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from app.core.documents.base import Heading, Page

# A piece shorter than this between two headings (a chapter's title right before its first
# section's) stays with the piece after it rather than becoming a chunk of its own.
MIN_SECTION_TOKENS = 12


class OffsetTokenizer(Protocol):
    """The slice of a Hugging Face fast tokenizer we use."""

    def __call__(
        self,
        text,
        *,
        add_special_tokens: bool,
        return_offsets_mapping: bool,
        return_attention_mask: bool,
        return_token_type_ids: bool,
    ): ...


@dataclass(frozen=True)
class Chunk:
    page: int | None
    start: int  # character offsets in the page's text
    end: int
    text: str
    tokens: int


def _word_starts(text: str, offsets: list[tuple[int, int]]) -> list[bool]:
    """Token i starts a word when whitespace (or the text's start) comes before it."""
    starts = []
    prev_end = 0
    for i, (s, _e) in enumerate(offsets):
        starts.append(i == 0 or s > prev_end or (s > 0 and text[s - 1].isspace()))
        prev_end = _e
    return starts


def split_text(
    text: str, offsets: list[tuple[int, int]], max_tokens: int, overlap: int
) -> Iterator[tuple[int, int, int]]:
    """Yield (start_char, end_char, n_tokens) windows over one page's tokens."""
    n = len(offsets)
    if n == 0:
        return
    overlap = max(0, min(overlap, max_tokens // 2))
    starts = _word_starts(text, offsets)
    s = 0
    while s < n:
        end = min(s + max_tokens, n)
        if end < n:  # step back to a word start so no word is cut
            cut = end
            while cut > s + 1 and not starts[cut]:
                cut -= 1
            if cut > s + 1:
                end = cut
        yield offsets[s][0], offsets[end - 1][1], end - s
        if end >= n:
            break
        nxt = max(end - overlap, s + 1)
        while nxt < end and not starts[nxt]:
            nxt += 1
        s = nxt


def sections_of(
    tokens: list[tuple[int, int]], headings: tuple[Heading, ...]
) -> list[tuple[int, int]]:
    """A page's tokens cut where its sections begin, as [lo, hi) token ranges."""
    if not headings:
        return [(0, len(tokens))] if tokens else []
    starts = [s for s, _e in tokens]
    cuts = [0]
    for heading in headings:
        at = bisect.bisect_left(starts, heading.offset)
        if at - cuts[-1] >= MIN_SECTION_TOKENS:
            cuts.append(at)
    return [(lo, hi) for lo, hi in itertools.pairwise([*cuts, len(tokens)]) if hi > lo]


def chunk_pages(
    pages: Iterable[Page],
    tokenizer: OffsetTokenizer,
    max_tokens: int,
    overlap: int,
    batch_pages: int = 16,
) -> Iterator[Chunk]:
    """Chunks of every page, in order. Pages are tokenized in small batches (fast tokenizers
    parallelise a batch) but never all at once, so memory stays bounded."""
    batch: list[Page] = []
    for page in pages:
        if page.text.strip():
            batch.append(page)
        if len(batch) >= batch_pages:
            yield from _chunk_batch(batch, tokenizer, max_tokens, overlap)
            batch = []
    if batch:
        yield from _chunk_batch(batch, tokenizer, max_tokens, overlap)


def _chunk_batch(
    pages: list[Page], tokenizer: OffsetTokenizer, max_tokens: int, overlap: int
) -> Iterator[Chunk]:
    encoded = tokenizer(
        [p.text for p in pages],
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    for page, offsets in zip(pages, encoded["offset_mapping"], strict=True):
        tokens = [tuple(o) for o in offsets]
        for lo, hi in sections_of(tokens, page.headings):
            for start, end, n in split_text(page.text, tokens[lo:hi], max_tokens, overlap):
                raw = page.text[start:end]
                text = raw.strip()
                if text:  # offsets describe the stripped text exactly
                    lead = len(raw) - len(raw.lstrip())
                    yield Chunk(page.number, start + lead, start + lead + len(text), text, n)
