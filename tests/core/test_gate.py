"""The relevance gate: pure parts first, then real libraries with the real embedder."""

from __future__ import annotations

import json

import pytest

from app.core.cancel import CancelToken
from app.core.gate import (
    CLOSE_ENOUGH_Z,
    KEYWORD_SUPPORT,
    KEYWORD_Z,
    Baseline,
    RelevanceGate,
    baseline_of,
    decide,
    keyword_support,
    load_probes,
)
from app.core.ingest import IngestOptions, Ingestor
from app.core.library import Library
from app.core.retrieval import Retriever
from app.paths import resources_dir

# ------------------------------------------------------------------ pure parts


def test_baseline_is_robust_to_a_few_probes_that_match_the_library():
    plain = baseline_of([0.10, 0.12, 0.14, 0.16, 0.18, 0.20, 0.22], "m", 100)
    with_outliers = baseline_of([0.10, 0.12, 0.14, 0.16, 0.18, 0.85, 0.90], "m", 100)
    assert abs(plain.median - with_outliers.median) < 0.03
    assert with_outliers.z(0.6) > 3  # a real match still stands far above it


def test_baseline_spread_has_a_floor_so_a_tiny_library_does_not_divide_by_nothing():
    base = baseline_of([0.1, 0.1, 0.1, 0.1], "m", 3)
    assert base.spread > 0
    assert base.z(0.1) == 0


def test_support_weighs_rare_words_and_counts_missing_ones_against():
    freq = {"capital": 40, "france": 0, "atan": 3, "arguments": 900}.get

    def df(term):
        return freq(term, 0)

    passages = ["atan(y, x) takes two arguments, the arc-tangent of y/x."]
    on = keyword_support("atan with two arguments", passages, df, total=10_000)
    off = keyword_support("What is the capital of France?", passages, df, total=10_000)
    assert on > 0.9
    assert off == 0.0
    # A common word found is worth less than a rare one missing.
    half = keyword_support("atan capital", ["capital"], df, total=10_000)
    assert half < 0.5


def test_support_accepts_simple_inflections():
    def df(term):
        return 10

    assert keyword_support("plots", ["how to plot data"], df, 1000) == 1.0
    assert keyword_support("plotting", ["plot"], df, 1000) == 0.0  # not a loose prefix match


def test_decide_needs_closeness_or_keywords_with_some_closeness():
    assert decide(CLOSE_ENOUGH_Z + 0.1, 0.0).answerable
    assert not decide(CLOSE_ENOUGH_Z - 0.1, KEYWORD_SUPPORT - 0.1).answerable
    assert decide(KEYWORD_Z + 0.1, KEYWORD_SUPPORT).answerable
    assert not decide(KEYWORD_Z - 0.1, 1.0).answerable  # words alone are not enough


def test_probe_bank_is_large_and_distinct_from_the_offtopic_test_set():
    probes = load_probes(resources_dir() / "gate" / "probes.txt")
    assert len(probes) >= 100
    bench = resources_dir() / "bench" / "offtopic.jsonl"
    offtopic = {json.loads(line)["question"] for line in bench.read_text().splitlines() if line}
    assert len(offtopic) >= 40
    assert not offtopic & set(probes)


# ------------------------------------------------------------------ real libraries

HANDBOOK = {
    "leave.txt": (
        "Annual leave policy. Every employee gets 27 days of paid annual leave per year, plus "
        "public holidays. New employees accrue leave from their first day. Up to five unused "
        "days may be carried over into the next year; the rest lapse on 31 March. Requests for "
        "leave longer than two weeks need the approval of your line manager four weeks ahead."
    ),
    "expenses.txt": (
        "Travel and expenses. Claims for travel to a client are made in the expenses portal "
        "within 30 days, with receipts attached. Rail travel is second class; flights under "
        "four hours are economy. The daily meal allowance is 35 euros. Purchase orders over "
        "5,000 euros are approved by the finance director."
    ),
    "printer.txt": (
        "Printer troubleshooting. If the third-floor printer shows error E-52, open tray 2 and "
        "remove the jammed sheet, then close the tray firmly. Toner cartridges are kept in the "
        "supply room next to the kitchen. For repeated jams call the facilities desk on 4410."
    ),
}


def handbook_library(root, embedder, repeat: int = 1) -> Library:
    """HANDBOOK's three files (each text `repeat` times) ingested into a library under root."""
    (root / "docs").mkdir()
    for name, text in HANDBOOK.items():
        (root / "docs" / name).write_text((text + "\n\n") * repeat, encoding="utf-8")
    (root / "home").mkdir()
    library = Library(root / "home", vector_process=False)
    list(Ingestor(library, embedder, IngestOptions()).run([str(root / "docs")], CancelToken()))
    return library


@pytest.fixture(scope="module")
def handbook(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("handbook")
    library = handbook_library(root, embedder, repeat=3)
    yield library, root
    library.close()


def _retriever(library, embedder, cache=None):
    probes = load_probes(resources_dir() / "gate" / "probes.txt")
    gate = RelevanceGate(library, embedder.embed, embedder.model_id, probes, cache=cache)
    return Retriever(library, embedder, gate=gate)


@pytest.mark.parametrize(
    "question",
    [
        "How many days of holiday do I get each year?",
        "Who approves a purchase order of 8,000 euros?",
        "The printer says E-52, what do I do?",
        "Can I carry unused leave into next year?",
    ],
)
def test_questions_the_handbook_answers_pass(handbook, embedder, question):
    library, _ = handbook
    retriever = _retriever(library, embedder)
    verdict = retriever.judge(question, retriever.search(question))
    assert verdict.answerable, verdict


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of France?",
        "Who won the football World Cup in 2018?",
        "What is a good recipe for banana bread?",
        "How tall is Mount Everest?",
    ],
)
def test_questions_the_handbook_does_not_answer_are_refused(handbook, embedder, question):
    library, _ = handbook
    retriever = _retriever(library, embedder)
    hits = retriever.search(question)
    assert hits  # there are always closest passages...
    verdict = retriever.judge(question, hits)
    assert not verdict.answerable, verdict  # ...but they do not answer it


def test_baseline_is_cached_and_measured_again_when_the_library_grows(embedder, tmp_path):
    root = tmp_path
    library = handbook_library(root, embedder)
    cache = tmp_path / "baseline.json"
    gate = _retriever(library, embedder, cache=cache).gate
    first = gate.baseline()
    assert json.loads(cache.read_text())["chunks"] == first.chunks == library.chunk_count()
    assert cache.stat().st_mode & 0o777 == 0o600  # the data directory's files are private
    # A second gate (a new start) reads the file instead of asking the probes again.
    again = _retriever(library, embedder, cache=cache).gate
    calls = []
    again._embed = lambda texts: calls.append(texts) or embedder.embed(texts)
    assert again.baseline() == first
    assert calls == []
    # The library doubles: the cached baseline no longer describes it.
    more = root / "more"
    more.mkdir()
    for name, text in HANDBOOK.items():
        (more / f"copy-{name}").write_text(text.replace("employee", "staff member") + "\n")
    list(Ingestor(library, embedder, IngestOptions()).run([str(more)], CancelToken()))
    assert again.baseline().chunks == library.chunk_count() > first.chunks
    assert calls  # measured again
    library.close()


def test_a_damaged_cache_is_measured_again(handbook, embedder, tmp_path):
    library, _ = handbook
    cache = tmp_path / "baseline.json"
    cache.write_text("{not json")
    base = _retriever(library, embedder, cache=cache).gate.baseline()
    assert isinstance(base, Baseline)
    assert json.loads(cache.read_text())["median"] == pytest.approx(base.median)
