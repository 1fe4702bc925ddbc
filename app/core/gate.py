"""Does the library answer this question at all? The relevance gate, decided by evidence.

A raw cosine cannot decide it: all-MiniLM gives an unrelated question 0.3 against a large
technical library and a well-asked paraphrase 0.4, and where that line falls moves with the
library. So the gate weighs two pieces of evidence, each measured against this library:

- **Closeness, calibrated.** The library is asked a fixed bank of questions about everything and
  nothing (`resources/gate/probes.txt`); their best cosines are what "unrelated" scores here.
  A question's best cosine counts by how far it stands above that baseline, in units of the
  baseline's spread (a robust z: median and median absolute deviation, so probes that do match
  a library, say an HR handbook, do not move it). The baseline is cached per library size and
  embedding model, and computed again when either changes.
- **Keyword support.** The question's words weighted by their rarity in the library (IDF from
  the keyword index); support is the weighted share of them that the best passages contain. A
  question about "the capital of France" finds neither word in the R manuals; one about
  "atan with two arguments" finds both.

A question is answerable when its closeness alone is far above the baseline, or when it is
somewhat above it and the best passages carry nearly all of its words (see decide()). The
thresholds were fitted on the tuning halves of resources/bench/offtopic.jsonl, the QA sets of
the R manuals and the office set, and checked once on their held-out halves (`confidant bench
--gate`; figures in bench/NOTES.md, "Relevance gate").
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import statistics
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from app.core.events import Hit
from app.core.library import Library, fts_terms

log = logging.getLogger(__name__)

# Fitted on the tuning halves only (see the module docstring). Answerable questions there
# stood at z >= 2.8 (R manuals) and >= 3.3 (office files); off-topic ones at z <= 2.1 and
# <= 3.2 (one each above 2.5: "How many weeks are there in a year?", "How do I request a new
# laptop from IT?", which the Debian documentation half answers).
CLOSE_ENOUGH_Z = 2.5  # closeness alone suffices from here
KEYWORD_Z = 1.0  # from here, keyword support decides...
KEYWORD_SUPPORT = 0.9  # ...when nearly all of the question's weight is found (codes, names)
SUPPORT_PASSAGES = 3  # keyword support is read in this many of the best passages
MIN_SPREAD = 0.02  # a library of a few passages can give every probe nearly the same cosine
REBASE_SHARE = 0.2  # recompute the baseline when the library grew or shrank by this share

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Baseline:
    """What unrelated questions score against one library."""

    model_id: str
    chunks: int
    median: float
    spread: float  # scaled median absolute deviation of the probes' best cosines, floored

    def z(self, cosine: float) -> float:
        return (cosine - self.median) / self.spread


@dataclass(frozen=True)
class Verdict:
    answerable: bool
    closeness: float  # robust z of the best cosine over the library's baseline
    support: float  # 0..1, IDF-weighted share of the question's words in the best passages

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def load_probes(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def baseline_of(cosines: Sequence[float], model_id: str, chunks: int) -> Baseline:
    """Median and spread (the median absolute deviation, scaled to a standard deviation's
    units) of the probes' best cosines: both hold while up to half the probes match."""
    median = statistics.median(cosines)
    mad = statistics.median(abs(c - median) for c in cosines)
    return Baseline(model_id, chunks, median, max(1.4826 * mad, MIN_SPREAD))


def keyword_support(
    question: str, passages: Sequence[str], doc_freq: Callable[[str], int], total: int
) -> float:
    """IDF-weighted share of the question's words (stop words dropped) found in `passages`.
    A word the library never uses weighs the most, so an off-topic question's own subject
    ("France", "cafeteria") counts against it."""
    terms = fts_terms(question)
    if not terms:
        return 0.0
    seen = set()
    for text in passages:
        seen.update(w.lower() for w in _WORD.findall(text))
    weights = {t: math.log((total + 1) / (doc_freq(t) + 0.5)) for t in terms}
    whole = sum(max(w, 0.0) for w in weights.values())
    if whole <= 0:
        return 0.0
    return sum(max(w, 0.0) for t, w in weights.items() if _found(t, seen)) / whole


def _found(term: str, words: set[str]) -> bool:
    """The word itself or a simple inflection of it (plot / plots / plotting)."""
    if term in words:
        return True
    stem = term[:-1] if term.endswith("s") and len(term) > 3 else term
    return any(w == stem or (len(stem) > 4 and w.startswith(stem)) for w in words)


def decide(closeness: float, support: float) -> Verdict:
    """Close enough on its own, or somewhat close and carrying nearly all the question's
    words: a part number or a name that embeddings blur but the passages spell out."""
    answerable = closeness >= CLOSE_ENOUGH_Z or (
        closeness >= KEYWORD_Z and support >= KEYWORD_SUPPORT
    )
    return Verdict(answerable, closeness, support)


class RelevanceGate:
    """Judges retrieved hits against the library's own baseline. Thread-safe."""

    def __init__(
        self,
        library: Library,
        embed: Callable[[list[str]], np.ndarray],
        model_id: str,
        probes: Sequence[str],
        cache: Path | None = None,
    ) -> None:
        self.library = library
        self._embed = embed
        self.model_id = model_id
        self.probes = list(probes)
        self.cache = cache
        self._baseline: Baseline | None = None
        self._probe_vectors: np.ndarray | None = None
        self._lock = threading.Lock()

    def judge(self, question: str, hits: Sequence[Hit]) -> Verdict:
        if not hits:  # an empty library: nothing to judge, nothing that answers
            return Verdict(False, 0.0, 0.0)
        base = self.baseline()
        closeness = base.z(max(h.score for h in hits))
        support = keyword_support(
            question,
            [h.text for h in hits[:SUPPORT_PASSAGES]],
            self.library.term_frequency,
            max(1, base.chunks),  # within REBASE_SHARE of the library's size
        )
        return decide(closeness, support)

    def baseline(self) -> Baseline:
        """The cached baseline, or a new one when the library changed size by REBASE_SHARE."""
        with self._lock:
            chunks = self.library.chunk_count()
            base = self._baseline or self._read_cache()
            if base is None or base.model_id != self.model_id or _moved(base.chunks, chunks):
                base = self._measure(chunks)
                self._write_cache(base)
            self._baseline = base
            return base

    def _measure(self, chunks: int) -> Baseline:
        if self._probe_vectors is None:
            self._probe_vectors = self._embed(self.probes)
        best = self.library.best_similarities(self._probe_vectors)
        return baseline_of(best, self.model_id, chunks)

    def _read_cache(self) -> Baseline | None:
        if self.cache is None or not self.cache.is_file():
            return None
        try:
            return Baseline(**json.loads(self.cache.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None  # rebuilt below; the cache holds nothing that cannot be measured again

    def _write_cache(self, base: Baseline) -> None:
        if self.cache is None:
            return
        try:
            tmp = self.cache.with_suffix(".tmp")
            # Readable by the user alone, like everything in the data directory.
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(base)))
            tmp.replace(self.cache)
        except OSError as exc:  # a full disk: measured again next time, nothing lost
            log.warning("could not keep the relevance baseline: %s", exc)


def _moved(then: int, now: int) -> bool:
    return abs(now - then) > REBASE_SHARE * max(then, 1) or (then == 0) != (now == 0)
