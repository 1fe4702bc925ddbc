"""Pages -> chunks sized in the embedder's own tokens, with overlap, never cutting a word.

Each page is tokenized once with character offsets; windows of at most `max_tokens` tokens are cut
at word starts, so each chunk keeps its page and exact character span, and its token ids, which the
embedder reads as they are instead of tokenizing the text again. Chunks never straddle a
page, which keeps every citation's page number exact, nor a section boundary (where the PDF's
outline says one begins): a chunk holding the end of one question of a FAQ and the start of the
next matches neither well (hit@5 over the benchmark questions rose with it: bench/NOTES.md).
For pages that ask for it (Page.embed_path: web pages, Markdown), what is embedded is the
chunk's section path (its parents' titles, or all of it when the chunk does not begin with its
own title) followed by its text; the stored text and its offsets are the page's own, so
citations and highlights are unchanged.
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
    """What the chunker needs of a tokenizer: per text, token ids and character offsets,
    without the model's special tokens."""

    def encode(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]: ...


class PageTokenizer:
    """The embedder's own tokenizer (a Hugging Face fast tokenizer's Rust core, `tokenizers`),
    without transformers or torch: it pickles as its JSON, so the PDF worker process chunks with
    exactly the tokens the embedder would make."""

    def __init__(self, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        self._json = tokenizer_json
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    @classmethod
    def of(cls, hf_tokenizer) -> PageTokenizer | None:
        """The fast tokenizer's core; None for a slow (pure Python) tokenizer, which has none."""
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        return cls(backend.to_str()) if backend is not None else None

    def __reduce__(self):
        return (PageTokenizer, (self._json,))

    def encode(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        encoded = self._tokenizer.encode_batch(texts, add_special_tokens=False)
        return [(e.ids, e.offsets) for e in encoded]


# A chunk's section path ("Chapter 4 > Options") is embedded before its text, at most this many
# tokens of it (the nearest titles kept), so a section titled "Synopsis" or "Options" is still
# found by what it is the synopsis of. Window + context stay within the embedder's 256.
CONTEXT_TOKENS = 40
CONTEXT_SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    page: int | None
    start: int  # character offsets in the page's text
    end: int
    text: str
    ids: tuple[int, ...]  # the embedder's token ids for context + text, special tokens left out
    context: str = ""  # the section path embedded before the text ("" when none), ending "\n"

    @property
    def embedded_text(self) -> str:
        """What the vector stands for: the section path, then the passage."""
        return self.context + self.text


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
) -> Iterator[tuple[int, int]]:
    """Yield [lo, hi) token windows over one page's tokens."""
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
        yield s, end
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
    parallelise a batch) but never all at once, so memory stays bounded. The section a page
    begins in carries over from the pages before it."""
    batch: list[Page] = []
    sections = _Sections(tokenizer)
    for page in pages:
        if page.text.strip():
            batch.append(page)
        if len(batch) >= batch_pages:
            yield from _chunk_batch(batch, tokenizer, max_tokens, overlap, sections)
            batch = []
    if batch:
        yield from _chunk_batch(batch, tokenizer, max_tokens, overlap, sections)


class _Sections:
    """The section path in force as the chunker walks a document, and each path's context
    (text and token ids), tokenized once."""

    def __init__(self, tokenizer: OffsetTokenizer) -> None:
        self.tokenizer = tokenizer
        self.path: tuple[str, ...] = ()
        self._cache: dict[tuple[str, ...], tuple[str, tuple[int, ...]]] = {}

    def context(self, path: tuple[str, ...]) -> tuple[str, tuple[int, ...]]:
        titles = tuple(" ".join(t.split()) for t in path if t and t.strip())
        if not titles:
            return "", ()
        if titles not in self._cache:
            text = CONTEXT_SEPARATOR.join(titles) + "\n"
            ids = self.tokenizer.encode([text])[0][0]
            if len(ids) > CONTEXT_TOKENS:  # keep the nearest titles: the end of the path
                ids = ids[-CONTEXT_TOKENS:]
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[titles] = (text, tuple(ids))
        return self._cache[titles]


def _chunk_batch(
    pages: list[Page],
    tokenizer: OffsetTokenizer,
    max_tokens: int,
    overlap: int,
    sections: _Sections,
) -> Iterator[Chunk]:
    encoded = tokenizer.encode([p.text for p in pages])
    for page, (ids, offsets) in zip(pages, encoded, strict=True):
        tokens = [tuple(o) for o in offsets]
        headings = sorted(page.headings, key=lambda h: h.offset)
        for lo, hi in sections_of(tokens, page.headings):
            section = tokens[lo:hi]
            for s, e in split_text(page.text, section, max_tokens, overlap):
                start, end = section[s][0], section[e - 1][1]
                raw = page.text[start:end]
                text = raw.strip()
                if not text:
                    continue
                lead = len(raw) - len(raw.lstrip())
                begins = start + lead
                # The section this chunk begins in; when it begins with that section's own
                # title, the title is in the text already and only its parents lead.
                at_title = False
                for h in headings:
                    if h.offset > begins:
                        break
                    sections.path = h.path
                    at_title = h.offset == begins or not page.text[h.offset : begins].strip()
                path = sections.path[:-1] if at_title else sections.path
                context, context_ids = sections.context(path) if page.embed_path else ("", ())
                window = context_ids + tuple(ids[lo + s : lo + e])
                yield Chunk(page.number, begins, begins + len(text), text, window, context)
        if headings:  # the last section on the page runs on into the next page
            sections.path = headings[-1].path


@dataclass(frozen=True)
class Chunker:
    """How a library cuts pages into chunks; picklable, so a worker process can do it."""

    tokenizer: OffsetTokenizer
    max_tokens: int
    overlap: int

    def chunks(self, pages: Iterable[Page]) -> Iterator[Chunk]:
        return chunk_pages(pages, self.tokenizer, self.max_tokens, self.overlap)
