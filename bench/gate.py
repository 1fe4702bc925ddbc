"""`confidant bench --library L --gate`: how often the relevance gate refuses, by set and part.

Answerable questions come from QA files (each row a question the library answers); off-topic
ones from resources/bench/offtopic.jsonl. Rows carry the part of their set they belong to:
`part` "tune" / "AB" or `split` "tune" for the halves the gate's thresholds were fitted on;
"heldout" / "held-out" / "C" for the halves kept back to check them. Targets (issue 16):
off-topic refused >= 95%, answerable refused <= 5%.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from bench.stats import percentile

OFFTOPIC_DEFAULT = Path(__file__).resolve().parents[1] / "resources" / "bench" / "offtopic.jsonl"
HELD_OUT = {"heldout", "held-out", "C"}


def read_rows(path: str | Path) -> list[dict]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def part_of(row: dict) -> str:
    return "held-out" if (row.get("part") in HELD_OUT or row.get("split") in HELD_OUT) else "tune"


def bench_gate(
    retriever, answerable: Sequence[str | Path], offtopic: str | Path = OFFTOPIC_DEFAULT
) -> dict:
    """Refusal rates of `retriever.judge` on answerable and off-topic questions, per part."""
    sets = [(Path(p).name, "answerable", read_rows(p)) for p in answerable]
    sets.append((Path(offtopic).name, "offtopic", read_rows(offtopic)))
    retriever.judge("warm-up", retriever.search("warm-up"))  # the baseline, measured once
    results: dict = {"sets": {}, "judge_ms_p95": 0.0}
    timings: list[float] = []
    wrong: list[dict] = []
    for name, kind, rows in sets:
        per_part: dict[str, list[int]] = {}
        for row in rows:
            hits = retriever.search(row["question"])
            t0 = time.perf_counter()
            verdict = retriever.judge(row["question"], hits)
            timings.append((time.perf_counter() - t0) * 1000)
            refused = not verdict.answerable
            counts = per_part.setdefault(part_of(row), [0, 0])
            counts[0] += refused
            counts[1] += 1
            if refused == (kind == "answerable"):
                wrong.append({"set": name, "question": row["question"], **verdict.as_dict()})
        results["sets"][name] = {
            "kind": kind,
            **{
                part: {"refused": r, "of": n, "share": round(r / n, 3)}
                for part, (r, n) in per_part.items()
            },
        }
    results["judge_ms_p95"] = round(percentile(timings, 95), 2)
    results["wrong"] = wrong
    return results


def format_gate(d: dict) -> str:
    lines = ["Relevance gate (refused / asked)"]
    for name, s in d["sets"].items():
        parts = ", ".join(
            f"{part} {v['refused']}/{v['of']} ({v['share']:.0%})"
            for part, v in s.items()
            if part != "kind"
        )
        lines.append(f"  {name} [{s['kind']}]: {parts}")
    lines.append(f"  judging, p95: {d['judge_ms_p95']} ms (after the search)")
    for w in d["wrong"]:
        lines.append(
            f"  wrong: {w['set']}: {w['question']} (z {w['closeness']}, kw {w['support']})"
        )
    return "\n".join(lines)
