"""The benchmark's logic: percentiles, hit@k scoring, the QA set, llama-bench parsing, and the
shape of `confidant bench` output on a tiny real ingest. No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.generation import llama_bench_commands, parse_llama_bench
from bench.retrieval import load_qa, score_hits, synthetic_texts
from bench.stats import median, percentile
from tests.pdfmaker import make_pdf

ROOT = Path(__file__).resolve().parents[2]
QA = ROOT / "resources" / "bench" / "qa.jsonl"
CORPUS = {
    "R-FAQ.pdf",
    "R-admin.pdf",
    "R-data.pdf",
    "R-exts.pdf",
    "R-intro.pdf",
    "R-ints.pdf",
    "R-lang.pdf",
    "gnuplot.pdf",
    "refman.pdf",
}


@pytest.mark.parametrize("q", [0, 5, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy(q):
    values = [3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.3, 5.8, 9.7, 0.3, 2.2]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edges():
    assert np.isnan(percentile([], 50))
    assert percentile([7.0], 95) == 7.0
    assert median([1, 2, 3, 4]) == 2.5


def test_hit_at_k_with_a_fake_searcher():
    items = [
        {"question": "a", "file": "x.pdf", "pages": [3]},
        {"question": "b", "file": "y.pdf", "pages": [1, 2]},
        {"question": "c", "file": "x.pdf", "pages": [9]},
        {"question": "d", "file": "z.pdf", "pages": [4]},
    ]
    answers = {
        "a": [("/docs/x.pdf", 3), ("/docs/y.pdf", 1)],  # first: hit@1
        "b": [("/docs/x.pdf", 2), ("/other/y.pdf", 2)],  # second: hit@5 only
        "c": [("/docs/x.pdf", 8)] * 5 + [("/docs/x.pdf", 9)],  # sixth: beyond k
        "d": [],
    }
    asked = []

    def search(question, k):
        asked.append(k)
        return answers[question]

    got = score_hits(items, search, k=5)
    assert got["questions"] == 4
    assert got["hit@1"] == 0.25
    assert got["hit@5"] == 0.5
    assert got["missed"] == ["c", "d"]
    assert asked == [5, 5, 5, 5]


@pytest.mark.parametrize("name,least", [("qa.jsonl", 25), ("qa-blind.jsonl", 50)])
def test_the_qa_sets_are_valid(name, least):
    path = QA.with_name(name)
    items = load_qa(path)
    assert len(items) >= least
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    assert len(lines) == len(items)
    questions = set()
    for item in items:
        assert isinstance(item["question"], str) and len(item["question"]) > 10
        assert item["file"] in CORPUS
        assert item["pages"] and all(isinstance(p, int) and p >= 1 for p in item["pages"])
        questions.add(item["question"])
    assert len(questions) == len(items)


def test_the_blind_questions_are_not_the_tuning_questions():
    tuned = {q["question"] for q in load_qa(QA)}
    assert not tuned & {q["question"] for q in load_qa(QA.with_name("qa-blind.jsonl"))}


def test_load_qa_names_a_missing_field(tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"question": "q?", "file": "a.pdf"}\n')
    with pytest.raises(ValueError, match="pages"):
        load_qa(bad)


def test_synthetic_texts_are_deterministic_and_varied():
    a, b = synthetic_texts(5, seed=1), synthetic_texts(5, seed=1)
    assert a == b and len(set(a)) == 5
    assert all(len(t.split()) == 120 for t in a)


def test_llama_bench_command_and_parsing():
    prefill, decode = llama_bench_commands("/bin/llama-bench", "/m.gguf", 500, 128, 3)
    assert prefill[:5] == ["/bin/llama-bench", "-p", "500", "-n", "0"]
    assert decode[1:7] == ["-p", "0", "-n", "128", "-d", "500"]  # decode at the prompt's depth
    for cmd in (prefill, decode):
        assert cmd[cmd.index("-ngl") + 1] == "99" and cmd[cmd.index("-fa") + 1] == "1"
        assert cmd[-2:] == ["-o", "json"]
    out = json.dumps(
        [
            {"n_prompt": 500, "n_gen": 0, "avg_ts": 5123.4567},
            {"n_prompt": 0, "n_gen": 128, "avg_ts": 210.123},
        ]
    )
    assert parse_llama_bench(out) == {"pp_tok_s": 5123.46, "tg_tok_s": 210.12}


def test_generation_bench_imports_no_heavy_dependencies():
    code = (
        "import sys, bench.generation\n"
        "heavy = [m for m in ('chromadb', 'sentence_transformers', 'PySide6', 'torch') "
        "if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_bench_prints_a_table_and_json_for_a_tiny_ingest(tmp_path, capsys, home):
    from app.cli import main  # the bench loads the embedded MiniLM itself, as it measures it

    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "alpha.pdf", ["Tide tables for the harbour.", "The ferry leaves at nine."])
    make_pdf(docs / "beta.pdf", ["Invoices are paid within thirty days of receipt."])
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "When does the ferry leave?", "file": "alpha.pdf", "pages": [2]})
        + "\n"
        + json.dumps({"question": "How fast are invoices paid?", "file": "beta.pdf", "pages": [1]})
        + "\n"
    )
    args = ["bench", "--ingest", str(docs), "--qa", str(qa), "--retrieval", "--repeats", "1"]

    assert main([*args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"ingest", "retrieval", "qa"}
    ingest = data["ingest"]
    assert (ingest["files"], ingest["pages"], ingest["counts"]) == (2, 3, {"added": 2})
    assert ingest["chunks"] >= 3 and ingest["pages_per_s"] > 0 and ingest["peak_rss_mb"] > 0
    stages = ingest["stages"]
    assert set(stages) == {"waiting", "embedding", "storing", "committing"}
    assert stages["embedding"] > 0 and stages["committing"] > 0
    assert sum(stages.values()) <= ingest["seconds"]  # parts of the run, on its one thread
    assert not Path(ingest["home"]).exists()  # the temporary library is gone
    lat = data["retrieval"]
    assert lat["chunks"] == ingest["chunks"] and lat["p50_ms"] <= lat["p95_ms"]
    assert set(lat["parts_p50_ms"]) == {"embed", "vector", "keyword", "hits"}
    assert data["qa"]["questions"] == 2 and data["qa"]["hit@5"] == 1.0

    assert main(args) == 0
    table = capsys.readouterr().out
    for label in ("ingestion", "pages/s", "peak RSS", "its thread", "p95", "hit@1", "hit@5"):
        assert label in table
    assert not (home / "library.sqlite3").exists()  # the user's library was never opened


def test_bench_without_a_part_says_what_to_give(capsys):
    from app.cli import main

    assert main(["bench"]) == 2
    assert "nothing to measure" in capsys.readouterr().err


def test_bench_qa_without_a_library_refuses_instead_of_scoring_nothing(capsys):
    from app.cli import main

    assert main(["bench", "--qa", "resources/bench/qa.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "--library HOME" in err and "--ingest DIR" in err


def test_rows_without_pages_are_scored_by_file_and_evidence_words():
    item = {"question": "q", "file": "guide.md", "pages": [], "evidence": "TCP/IP swiss army"}

    def search(question, k):
        return [
            ("/d/other.md", None, "the TCP/IP swiss army knife"),  # wrong file
            ("/d/guide.md", None, "netcat is a network tool"),  # right file, not the answer
            ("/d/guide.md", None, "netcat: the TCP/IP Swiss-army knife"),
        ]

    got = score_hits([item], search, k=5)
    assert got["hit@1"] == 0.0 and got["hit@5"] == 1.0
    assert score_hits([item], search, k=2)["hit@2"] == 0.0
