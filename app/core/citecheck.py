"""Does each cited passage back the sentence that cites it? A local check after an answer.

`check_citations(answer, sources, embed)` splits the answer into sentences, keeps those that
carry citations ([1], [1][2], [1, 2], [1-3]), strips the markers and the Markdown from each, and
compares the claim with the sentences of every passage it cites:

- meaning: the best cosine between the claim (or the clause just before its marker) and any
  sentence of the passage, or any two neighbouring sentences together;
- words: the share of the claim's content words (light stems) found in the passage;
- numbers: every number of the claim must appear in the passage sentences that back it best
  ("two" counts as 2); a number found only elsewhere in the passage does not back it.

A source is unsupported when a number is missing, or when meaning and words together fall short
(cosine + LEXICAL_WEIGHT * overlap < THRESHOLD, constants tuned on the swapped-citation set of
bench/citecheck.py). A cited number that is not among the sources is always unsupported.

Everything is embedded in one call per answer (claims and passage sentences together; a pair of
sentences is the normalised sum of their vectors). Sentences citing several sources are checked
against each passage alone, with the clause before each marker as a second chance. Passages
are PDF text: hard line breaks are joined and words hyphenated across lines are mended before
comparing; the `support` sentences returned are the passage's own text, unmended, so a viewer
can find them in the passage as shown.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.core.events import CitationCheck, Source

# Decision constants, tuned on resources/bench/citecheck-tune.jsonl (bench/citecheck.py).
THRESHOLD = 0.84
LEXICAL_WEIGHT = 0.25
# 0: a claim's numbers must be in the passage sentences that back it; 1: or next to them.
NUMBER_REACH = 0
# Embed each pair of neighbouring passage sentences as a text of its own (True), or stand for it
# by the sum of the two sentences' vectors (False): as good on the benchmark, at half the cost.
EMBED_PAIRS = False
# The passage sentences that back a claim (returned in `support`, read for its numbers): the best
# and those within this cosine of it (at most three).
SUPPORT_MARGIN = 0.06
# Claims with fewer content words than this say too little to check ("See [2]."): never flagged
# for their wording, only for a citation that does not exist.
MIN_CLAIM_WORDS = 2

# ----------------------------------------------------------------------------- citations
_NUM = r"\d{1,3}(?:\s*[-–]\s*\d{1,3})?"
_GROUP_ONE = rf"\[\s*(?:sources?\s*)?{_NUM}(?:\s*[,;]\s*(?:sources?\s*)?{_NUM})*\s*\]"
# One or more markers side by side ("[1][2]", "[1], [2]", "[1] [2]"); not x[1] nor x[[1]] (R).
_GROUP = re.compile(rf"(?<![\w\])\[]){_GROUP_ONE}(?:\s*,?\s*{_GROUP_ONE})*", re.IGNORECASE)
_NUMBERS_IN = re.compile(r"(\d{1,3})(?:\s*[-–]\s*(\d{1,3}))?")
_MAX_RANGE = 20


@dataclass(frozen=True)
class _Marks:
    start: int
    end: int
    numbers: tuple[int, ...]


def _citations(masked: str) -> list[_Marks]:
    groups = []
    for m in _GROUP.finditer(masked):
        numbers: list[int] = []
        for a, b in _NUMBERS_IN.findall(m.group(0)):
            lo = int(a)
            hi = int(b) if b else lo
            if hi < lo or hi - lo > _MAX_RANGE:
                hi = lo
            numbers.extend(n for n in range(lo, hi + 1) if n not in numbers)
        groups.append(_Marks(m.start(), m.end(), tuple(numbers)))
    return groups


# ----------------------------------------------------------------------------- sentences
# Never end a sentence after these (lower case, without their final dot).
_ABBREVIATIONS = frozenset(
    "e.g i.e cf vs approx incl resp ca fig figs eq eqs no nos sec ch vol pp p al viz "
    "dr mr mrs ms prof st jr sr esp".split()
)
# End a sentence after these only when the next word starts with a capital or a digit.
_SOFT_ABBREVIATIONS = frozenset({"etc", "inc", "ltd", "co"})
_TERMINAL = re.compile(r"(?:[.!?]+|…)[\"'”’)*_]*")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_BULLET = re.compile(r"(?:[-*+•]\s+|\d{1,3}[.)]\s+|#{1,6}\s+|>\s?)+")
_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def _mask(text: str) -> str:
    """The answer with fenced code blocks blanked and inline code's content blanked (its
    backticks kept), same length: brackets and dots inside code are neither citations nor
    sentence ends."""
    out = list(text)
    for m in _FENCE.finditer(text):
        for i in range(m.start(), m.end()):
            if out[i] != "\n":
                out[i] = " "
    for m in _INLINE_CODE.finditer(text):
        for i in range(m.start() + 1, m.end() - 1):
            out[i] = "x"
    return "".join(out)


def _is_abbreviation(masked: str, dot: int, after: str) -> bool:
    m = _WORD_BEFORE.search(masked, 0, dot)
    if not m:
        return False
    word = m.group(1).lower().rstrip(".")
    if word in _ABBREVIATIONS:
        return True
    return word in _SOFT_ABBREVIATIONS and not (after[:1].isupper() or after[:1].isdigit())


def _sentence_ends(masked: str, groups: list[_Marks]) -> list[int]:
    """Offsets where a sentence ends: after terminal punctuation and the markers that follow it,
    before whitespace; and at every line break."""
    group_at = {g.start: g for g in groups}
    ends = []
    for m in _TERMINAL.finditer(masked):
        line = masked.rfind("\n", 0, m.start()) + 1
        if masked[line : m.start()].strip().isdigit():
            continue  # "2. " numbering a list item
        k = m.end()
        # markers after the full stop belong to its sentence: "... end. [1][2] Next"
        while True:
            j = k
            while j < len(masked) and masked[j] in " \t":
                j += 1
            g = group_at.get(j)
            if g is None:
                break
            k = g.end
            if k < len(masked) and masked[k] in ".!?":
                k += 1
        if k < len(masked) and not masked[k].isspace():
            continue  # 3.5, e.g.x, file.txt
        after = masked[k:].lstrip(" \t")
        bare_stop = m.group(0).rstrip("\"'”’)*_") == "."
        if bare_stop and _is_abbreviation(masked, m.start(), after):
            continue
        ends.append(k)
    ends.extend(m.start() for m in re.finditer(r"\n", masked))
    return sorted(set(ends))


@dataclass
class Sentence:
    """A sentence of the answer: answer[start:end] (bullet marks left out), and its markers
    (a marker alone at the start of the next line included)."""

    start: int
    end: int
    line_start: bool
    groups: list[_Marks]

    @property
    def cited(self) -> tuple[int, ...]:
        out: list[int] = []
        for g in self.groups:
            out.extend(n for n in g.numbers if n not in out)
        return tuple(out)


def split_answer(answer: str) -> list[Sentence]:
    """The answer's sentences, with their own citation markers. Bullets and heading marks are
    left outside the span; markers alone at the start of a line go to the sentence before when
    that one has none of its own."""
    masked = _mask(answer)
    groups = _citations(masked)
    sentences: list[Sentence] = []
    prev = 0
    for cut in [*_sentence_ends(masked, groups), len(answer)]:
        lo, hi = prev, cut
        prev = cut
        line_start = lo == 0 or "\n" in masked[max(0, lo - 1) : lo + 1]
        while lo < hi and masked[lo].isspace():
            lo += 1
        while hi > lo and masked[hi - 1].isspace():
            hi -= 1
        if lo >= hi:
            continue
        if line_start:
            bullet = _BULLET.match(masked, lo)
            if bullet and bullet.end() <= hi:
                lo = bullet.end()
        own = [g for g in groups if lo <= g.start and g.end <= hi]
        if line_start and own and own[0].start == lo and sentences:
            # "[2]" at the start of a line: the sentence above forgot to close with it
            rest = masked[own[0].end : hi].strip(" \t.,;:")
            before = sentences[-1]
            if not rest or not before.groups:
                before.groups.append(own[0])
                lo = _skip_space(masked, own[0].end, hi)
                own = own[1:]
                if lo >= hi:
                    continue
        if not masked[lo:hi].strip(" \t.,;:*_"):
            continue
        sentences.append(Sentence(lo, hi, line_start, own))
    return sentences


def _skip_space(text: str, lo: int, hi: int) -> int:
    while lo < hi and (text[lo].isspace() or text[lo] in ".,;:"):
        lo += 1
    return lo


_LEAD_IN = re.compile(r"^(?:[^\s:]+\s+){0,5}[^\s:]+:\s+")
_MARKDOWN = re.compile(r"\*\*|__|`|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)|^#+\s*")
_SPACES = re.compile(r"\s+")


def _clean(text: str) -> str:
    text = _MARKDOWN.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    return re.sub(r"\s+([.,;:!?])", r"\1", text)


def _claims(answer: str, sentence: Sentence, group: _Marks) -> list[str]:
    """What the sentence claims, without markers: the whole sentence, the same without a short
    lead-in ending in a colon, and the clause that ends at this marker when the sentence carries
    more than one (which may cite another source)."""
    inside = [g for g in sentence.groups if sentence.start <= g.start < sentence.end]
    pieces, at = [], sentence.start
    for g in inside:
        pieces.append(answer[at : g.start])
        at = g.end
    pieces.append(answer[at : sentence.end])
    whole = _clean(" ".join(pieces))
    claims = [whole]
    lead = _LEAD_IN.match(whole)
    if lead and len(_content(whole[lead.end() :])) >= MIN_CLAIM_WORDS:
        claims.append(whole[lead.end() :])  # "In short: X" claims X
    if group in inside and len(inside) > 1:
        i = inside.index(group)
        lo = inside[i - 1].end if i else sentence.start
        clause = _clean(answer[lo : group.start]).strip(" ,;:")
        if len(_content(clause)) >= 3 and clause != whole:
            claims.append(clause)
    return claims


# ----------------------------------------------------------------------------- passages
_HYPHEN_BREAK = re.compile(r"(\w)-[ \t]*\n[ \t]*(?=[a-z])")
_PASSAGE_END = re.compile(r"[.!?][\"'”’)]*(?=\s+[\"'“‘(\[]?[A-Z0-9•])|\n[ \t]*\n")
_MAX_SENTENCE_WORDS = 45
_LINES_WORDS = 30
_MIN_SENTENCE_WORDS = 4


def mend(text: str) -> str:
    """PDF text as prose: hyphenated line ends joined, line breaks and runs of space as one."""
    return _SPACES.sub(" ", _HYPHEN_BREAK.sub(r"\1", text)).strip()


def split_passage(text: str) -> list[tuple[int, int]]:
    """[start, end) spans of a passage's sentences. Full stops end a sentence before a capital
    (not after an abbreviation), blank lines always; a run of lines without one (code, tables,
    a reference page's argument list) is cut at line breaks every few dozen words; fragments
    of a few words join the sentence after them."""
    cuts = []
    for m in _PASSAGE_END.finditer(text):
        if m.group(0).startswith(".") and _is_abbreviation(text, m.start(), "A"):
            continue
        cuts.append(m.end())
    spans = []
    prev = 0
    for cut in [*cuts, len(text)]:
        spans.extend(_by_lines(text, prev, cut))
        prev = cut
    spans = [_trim(text, lo, hi) for lo, hi in spans]
    spans = [(lo, hi) for lo, hi in spans if hi > lo]
    merged: list[tuple[int, int]] = []
    carry = None
    for lo, hi in spans:
        if carry is not None:
            lo = carry
            carry = None
        if len(text[lo:hi].split()) < _MIN_SENTENCE_WORDS:
            carry = lo
            continue
        merged.append((lo, hi))
    if carry is not None:
        if merged:
            merged[-1] = (merged[-1][0], spans[-1][1])
        else:
            merged.append((carry, spans[-1][1]))
    return merged


def _trim(text: str, lo: int, hi: int) -> tuple[int, int]:
    while lo < hi and text[lo].isspace():
        lo += 1
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    return lo, hi


def _by_lines(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    if len(text[lo:hi].split()) <= _MAX_SENTENCE_WORDS:
        return [(lo, hi)]
    out, start = [], lo
    for m in re.finditer(r"\n", text[lo:hi]):
        end = lo + m.start()
        if len(text[start:end].split()) >= _LINES_WORDS:
            out.append((start, end))
            start = end
    out.append((start, hi))
    return out


# ----------------------------------------------------------------------------- words
_STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either else etc few for from further had has have having he her here hers him his how
    however i if in into is it its itself just least less let like many may might more most
    much must my neither no nor not now of off often on once one only or other others otherwise
    our out over own per rather same shall she should since so some such than that the their
    them then there therefore these they this those though through thus to too under until up
    upon us use used uses using very via was we well were what whatever when where whether
    which while who whom whose why will with within without would yet you your
    e g ie eg i.e e.g instead way ways given gives give""".split()
)
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve".split()
    )
}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]*|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


def _stem(word: str) -> str:
    w = word.lower()
    for suffix in ("ations", "ation", "ings", "ing", "ies", "ied", "edly", "ed", "es", "ly", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: -len(suffix)]
            break
    return w[:6]


def _content(text: str) -> list[str]:
    """Content-word stems of a text (numbers kept as written)."""
    out = []
    for w in _WORD.findall(text):
        lw = w.lower()
        if lw in _STOPWORDS or (len(lw) < 2 and not lw.isdigit()):
            continue
        out.append(lw if lw[0].isdigit() else _stem(lw))
    return out


def _numbers(text: str) -> set[str]:
    found = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    for w in re.findall(r"[A-Za-z]+", text):
        if w.lower() in _NUMBER_WORDS and w.lower() != "one":  # "one" is mostly a pronoun
            found.add(_NUMBER_WORDS[w.lower()])
    return found


def _missing_numbers(claim: str, passage_numbers: set[str]) -> list[str]:
    missing = []
    for n in _numbers(claim):
        if n in passage_numbers or any(p.startswith(n + ".") for p in passage_numbers):
            continue
        missing.append(n)
    return missing


def _overlap(claim_words: list[str], passage_words: set[str]) -> float:
    if not claim_words:
        return 0.0
    return sum(w in passage_words for w in claim_words) / len(claim_words)


# ----------------------------------------------------------------------------- the check
@dataclass(frozen=True)
class Evidence:
    """How one claim compares with one passage (what the decision reads)."""

    cosine: float  # best over the passage's sentences and pairs of neighbouring sentences
    overlap: float  # share of the claim's content words found in the passage
    missing_numbers: tuple[str, ...]
    best: tuple[int, ...]  # indices of the passage sentences that back it, best first

    @property
    def score(self) -> float:
        return self.cosine + LEXICAL_WEIGHT * self.overlap


def supported(
    evidence: Evidence,
    threshold: float | None = None,
    weight: float | None = None,
) -> bool:
    threshold = THRESHOLD if threshold is None else threshold
    weight = LEXICAL_WEIGHT if weight is None else weight
    if evidence.missing_numbers:
        return False
    return evidence.cosine + weight * evidence.overlap >= threshold


@dataclass
class _Passage:
    text: str
    spans: list[tuple[int, int]]
    rows: list[int]  # embedding rows of its sentences
    pair_rows: list[int]  # rows of sentence i + i+1
    words: set[str]
    numbers: list[set[str]]  # per sentence


def evidence_for(
    answer: str,
    sources: Sequence[Source],
    embed: Callable[[list[str]], np.ndarray],
) -> list[tuple[Sentence, dict[int, Evidence | None], dict[int, _Passage]]]:
    """Per cited sentence, the evidence for each number it cites (None: no such source)."""
    sentences = [s for s in split_answer(answer) if s.groups]
    if not sentences:
        return []
    by_number = {s.n: s for s in sources}
    texts: list[str] = []
    index: dict[str, int] = {}

    def row(text: str) -> int:
        if text not in index:
            index[text] = len(texts)
            texts.append(text)
        return index[text]

    passages: dict[int, _Passage] = {}
    wanted: list[tuple[Sentence, int, list[int], list[str]]] = []
    for sentence in sentences:
        for group in sentence.groups:
            claims = _claims(answer, sentence, group)
            claim_rows = [row(c) for c in claims]
            for n in group.numbers:
                wanted.append((sentence, n, claim_rows, claims))
                if n in by_number and n not in passages:
                    text = by_number[n].hit.text
                    spans = split_passage(text) or [(0, len(text))]
                    mended = [mend(text[a:b]) for a, b in spans]
                    passages[n] = _Passage(
                        text=text,
                        spans=spans,
                        rows=[row(m) for m in mended],
                        pair_rows=[row(f"{a} {b}") for a, b in itertools.pairwise(mended)]
                        if EMBED_PAIRS
                        else [],
                        words=set(_content(mend(text))),
                        numbers=[_numbers(m) for m in mended],
                    )
    vectors = np.asarray(embed(texts), dtype=np.float32)
    pairs: dict[int, np.ndarray] = {}
    for n, passage in passages.items():
        if passage.pair_rows:
            pairs[n] = vectors[passage.pair_rows]
        else:  # two neighbours' vectors summed: close to the pair's own, at no cost
            v = vectors[passage.rows]
            both = v[:-1] + v[1:]
            pairs[n] = both / np.maximum(np.linalg.norm(both, axis=1, keepdims=True), 1e-9)

    out: dict[int, tuple[Sentence, dict[int, Evidence | None]]] = {}
    for sentence, n, claim_rows, claims in wanted:
        entry = out.setdefault(id(sentence), (sentence, {}))[1]
        passage = passages.get(n)
        if passage is None:
            entry[n] = None
            continue
        best_ev: Evidence | None = None
        for r, claim in zip(claim_rows, claims, strict=True):
            sims = vectors[passage.rows] @ vectors[r]
            pair = pairs[n] @ vectors[r]
            cosine = float(max(sims.max(), pair.max() if len(pair) else -1.0))
            top = float(sims.max())
            order = [int(i) for i in np.argsort(-sims) if sims[i] >= top - SUPPORT_MARGIN]
            if len(pair) and float(pair.max()) > top:
                p = int(pair.argmax())
                order = [p, p + 1] + [i for i in order if i not in (p, p + 1)]
            words = _content(claim)
            ev = Evidence(
                cosine=cosine,
                overlap=_overlap(words, passage.words),
                missing_numbers=tuple(sorted(_missing_numbers(claim, _near(passage, order)))),
                best=tuple(order[:3]),
            )
            if best_ev is None or _better(ev, best_ev):
                best_ev = ev
        if len(_content(claims[0])) < MIN_CLAIM_WORDS and best_ev is not None:
            best_ev = Evidence(1.0, 1.0, (), best_ev.best)
        if best_ev is not None and (entry.get(n) is None or _better(best_ev, entry[n])):
            entry[n] = best_ev  # "A [1], B [1]": the clause that [1] backs best
    return [(s, ev, passages) for s, ev in out.values()]


def _near(passage: _Passage, best: list[int]) -> set[str]:
    """The numbers of the sentences that back the claim best (NUMBER_REACH: and of their
    neighbours): a number the claim shares only with another sentence of the passage is not
    backed."""
    out: set[str] = set()
    for i in best[:3]:
        for j in range(max(0, i - NUMBER_REACH), min(len(passage.numbers), i + NUMBER_REACH + 1)):
            out |= passage.numbers[j]
    return out


def _better(a: Evidence, b: Evidence) -> bool:
    return (supported(a), a.score) > (supported(b), b.score)


def check_citations(
    answer: str,
    sources: Sequence[Source],
    embed: Callable[[list[str]], np.ndarray],
) -> tuple[CitationCheck, ...]:
    """One CitationCheck per sentence of `answer` that cites sources, in answer order.

    `embed` maps texts to L2-normalised vectors (Embedder.embed); it is called once."""
    checks = []
    for sentence, evidence, passages in evidence_for(answer, sources, embed):
        cited = sentence.cited
        unsupported, support = [], {}
        for n in cited:
            ev = evidence.get(n)
            if ev is None or not supported(ev):
                unsupported.append(n)
                continue
            p = passages[n]
            support[n] = tuple(p.text[p.spans[i][0] : p.spans[i][1]] for i in ev.best)
        checks.append(
            CitationCheck(
                start=sentence.start,
                end=sentence.end,
                cited=cited,
                unsupported=tuple(unsupported),
                support=support,
            )
        )
    return tuple(checks)
