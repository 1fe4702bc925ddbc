"""Decode through the model endpoint, on the GPU machine: Confidant's client (EndpointEngine)
against llama-server's own timings, and aggregate tok/s for 1, 4 and 8 concurrent streams.

usage: python -m bench.team_gpu URL [--tokens N] [--streams 1,4,8] [--repeats R]

Run by bench/team_gpu.sh, which builds llama-server, writes the 8B-shaped model and serves
it. Imports only httpx and the engine (no chromadb, Qt or torch on that machine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

from app.core.cancel import CancelToken
from app.core.llm import Generated
from app.core.team.endpoint import EndpointEngine

PASSAGE = (
    "Section 4.2. The supplier shall deliver the goods within thirty days of the order. "
    "Invoices are payable within forty-five days. Either party may terminate this agreement "
    "by written notice of ninety days. "
)


def _messages(words: int) -> list[dict]:
    text = (PASSAGE * (words // len(PASSAGE.split()) + 1)).strip()
    return [
        {"role": "system", "content": "Answer from the sources, citing them as [1]."},
        {"role": "user", "content": f"[1] {text}\n\nQuestion: What is the notice period?"},
    ]


def one(engine: EndpointEngine, tokens: int, words: int) -> tuple[Generated, dict | None]:
    final = None
    for item in engine.generate(engine.render(_messages(words)), CancelToken(), tokens, 0.0):
        if isinstance(item, Generated):
            final = item
    return final, engine.last_timings


def concurrent(url: str, streams: int, tokens: int, words: int) -> dict:
    engines = [EndpointEngine(url, extra_body={"ignore_eos": True}) for _ in range(streams)]
    for e in engines:
        e.load()
    results: list = [None] * streams
    barrier = threading.Barrier(streams)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = one(engines[i], tokens, words)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    total = sum(g.completion_tokens for g, _ in results)
    return {
        "streams": streams,
        "tokens": total,
        "wall_s": round(wall, 2),
        "aggregate_tok_s": round(total / wall, 1),
        "per_stream_client_tok_s": round(statistics.median(g.tokens_per_s for g, _ in results), 1),
        "per_stream_server_tok_s": round(
            statistics.median((t or {}).get("predicted_per_second", 0.0) for _, t in results), 1
        ),
        "ttft_ms_median": round(statistics.median(g.ttft_ms for g, _ in results), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--words", type=int, default=900, help="prompt length in words")
    p.add_argument("--streams", default="1,4,8")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    engine = EndpointEngine(args.url, extra_body={"ignore_eos": True})
    report = engine.load()
    one(engine, 16, 50)  # warm-up
    singles = []
    for _ in range(args.repeats):
        g, timings = one(engine, args.tokens, args.words)
        singles.append(
            {
                "client_tok_s": round(g.tokens_per_s, 1),
                "server_tok_s": round((timings or {}).get("predicted_per_second", 0.0), 1),
                "ttft_ms": round(g.ttft_ms, 1),
                "prompt_tokens": g.prompt_tokens,
                "completion_tokens": g.completion_tokens,
            }
        )
    out = {
        "model": report.model,
        "n_ctx": report.n_ctx,
        "single": singles,
        "concurrent": [
            concurrent(args.url, int(n), args.tokens, args.words) for n in args.streams.split(",")
        ],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
