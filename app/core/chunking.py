"""Pages -> chunks sized in the embedder's own tokens, with overlap, never cutting a word.

Each page is tokenized once with character offsets; windows of at most `max_tokens` tokens are cut
at word starts, so each chunk keeps its page and exact character span. Chunks never straddle a
page, which keeps every citation's page number exact.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from app.core.documents.base import Page


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
        for start, end, n in split_text(
            page.text, [tuple(o) for o in offsets], max_tokens, overlap
        ):
            raw = page.text[start:end]
            text = raw.strip()
            if text:  # offsets describe the stripped text exactly
                lead = len(raw) - len(raw.lstrip())
                yield Chunk(page.number, start + lead, start + lead + len(text), text, n)
