"""Generation speed through Confidant's engine, beside llama.cpp's own llama-bench.

By default the engine runs in its own process, as in the app (app.core.llm_process: the figures
include the pipe that carries each piece back); --in-process measures app.core.llm.LlamaEngine
directly. Imports only app.core.llm, app.core.cancel and the standard library (plus llama_cpp,
through the engine), so it runs on a GPU machine that has no chromadb, Qt or sentence-transformers:

    python -m bench.generation --model M.gguf --prompt-tokens 500,3500 --repeats 3 \
        [--llama-bench /path/to/llama-bench] [--json]

Each measurement is one fresh prompt of exactly N tokens (built with the engine's tokenizer and
checked against the count the engine reports), so no KV-cache reuse flatters the prefill. The
decode runs a fixed number of tokens, end-of-generation tokens ignored, as llama-bench does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from app.core.cancel import CancelToken
from app.core.llm import Generated, LlamaEngine
from app.core.llm_process import EngineProcess

WORDS = (
    "river stone quiet paper window garden morning silver letter market harbor lantern "
    "meadow thunder pencil orchard blanket canyon violin marble"
).split()


@dataclass
class GenRun:
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    prefill_tok_s: float
    decode_tok_s: float
    reused_tokens: int


@dataclass
class GenResult:
    model: str
    device: str
    gpu_layers: int
    load_s: float
    n_ctx: int
    engine: str = "process"  # "process" (as the app runs it) or "in-process"
    sampling: str = "auto"  # "auto" (in llama.cpp's graph when on the GPU) or "cpu"
    # "auto" (each decode queued before the token is handed on, on a GPU) or "serial"
    decode_order: str = "auto"
    by_prompt: dict[int, dict] = field(default_factory=dict)  # N -> medians and runs
    native: dict[int, dict] | None = None  # N -> llama-bench pp/tg tok/s
    ratio: dict[int, dict] | None = None  # N -> ours/native for pp and tg

    def as_dict(self) -> dict:
        return asdict(self)


def exact_prompt(engine, n_tokens: int, salt: int = 0) -> str:
    """Text that the engine turns into exactly n_tokens prompt tokens (its BOS counted, if it
    adds one). `salt` changes the first words, so two prompts share no KV-cache prefix."""
    rot = salt % len(WORDS)
    pool = WORDS[rot:] + WORDS[:rot]
    words = [f"Run {salt}:"]
    length = engine.prompt_length
    if length(words[0]) > n_tokens:
        raise ValueError(f"a prompt of {n_tokens} tokens is too short")
    i = 0
    while length(" ".join(words)) < n_tokens:
        words.extend(pool[(i + k) % len(pool)] for k in range(max(1, (n_tokens - len(words)) // 3)))
        i += 1
    # Drop words until at most n_tokens, then pad with one-token pieces up to it exactly.
    lo, hi = 1, len(words)
    while lo < hi:  # largest word count whose text is <= n_tokens tokens
        mid = (lo + hi + 1) // 2
        if length(" ".join(words[:mid])) <= n_tokens:
            lo = mid
        else:
            hi = mid - 1
    text = " ".join(words[:lo])
    for _ in range(64):
        n = length(text)
        if n == n_tokens:
            return text
        if n > n_tokens:
            text = text[:-1]
        else:
            text += "."
    raise RuntimeError(f"could not build a prompt of exactly {n_tokens} tokens")


def one_run(engine, prompt: str, gen_tokens: int) -> GenRun:
    final: Generated | None = None
    # Decode the full budget whatever the model says, like llama-bench's tg test.
    for item in engine.generate(
        prompt, CancelToken(), max_tokens=gen_tokens, temperature=0, stop_at_eog=False
    ):
        if isinstance(item, Generated):
            final = item
    assert final is not None
    return GenRun(
        prompt_tokens=final.prompt_tokens,
        completion_tokens=final.completion_tokens,
        ttft_ms=round(final.ttft_ms, 2),
        prefill_tok_s=round(final.prompt_tokens / (final.prefill_ms / 1000), 1)
        if final.prefill_ms
        else 0.0,
        decode_tok_s=round(final.tokens_per_s, 2),
        reused_tokens=final.reused_tokens,
    )


def bench_generation(
    model: str,
    prompt_tokens: list[int],
    repeats: int = 3,
    gen_tokens: int = 128,
    gpu_layers: int = -1,
    llama_bench: str | None = None,
    threads: int | None = None,
    in_process: bool = False,
    cpu_sampling: bool = False,
    serial_decode: bool = False,
) -> GenResult:
    n_ctx = max(prompt_tokens) + gen_tokens + 64
    started = time.perf_counter()
    make = LlamaEngine if in_process else EngineProcess
    engine = make(
        model,
        n_ctx=n_ctx,
        gpu_layers=gpu_layers,
        n_threads=threads,
        backend_sampling=False if cpu_sampling else None,
        overlap_decode=False if serial_decode else None,
    )
    report = engine.load()
    load_s = time.perf_counter() - started
    result = GenResult(
        model=report.model,
        device=report.where,
        gpu_layers=report.gpu_layers,
        load_s=round(load_s, 3),
        n_ctx=engine.n_ctx,
        engine="in-process" if in_process else "process",
        sampling="cpu" if cpu_sampling else "auto",
        decode_order="serial" if serial_decode else "auto",
    )
    try:
        one_run(engine, exact_prompt(engine, 32, salt=999), 8)  # warm-up: kernels, allocations
        for n in prompt_tokens:
            runs = [
                one_run(engine, exact_prompt(engine, n, salt=r), gen_tokens) for r in range(repeats)
            ]
            result.by_prompt[n] = {
                "prompt_tokens": runs[0].prompt_tokens,
                "ttft_ms": round(statistics.median(r.ttft_ms for r in runs), 2),
                "prefill_tok_s": round(statistics.median(r.prefill_tok_s for r in runs), 1),
                "decode_tok_s": round(statistics.median(r.decode_tok_s for r in runs), 2),
                "runs": [asdict(r) for r in runs],
            }
    finally:
        engine.close()
    if llama_bench:
        result.native = run_llama_bench(llama_bench, model, prompt_tokens, gen_tokens, repeats)
        result.ratio = {
            n: {
                "pp": _ratio(
                    result.by_prompt[n]["prefill_tok_s"], result.native[n].get("pp_tok_s")
                ),
                "tg": _ratio(result.by_prompt[n]["decode_tok_s"], result.native[n].get("tg_tok_s")),
            }
            for n in prompt_tokens
        }
    return result


def _ratio(ours: float, native: float | None) -> float | None:
    return round(ours / native, 3) if native else None


def llama_bench_commands(binary: str, model: str, n_prompt: int, gen_tokens: int, repeats: int):
    """Two runs, matching what Confidant does: prefill of n_prompt tokens from an empty context,
    and decode of gen_tokens at a context depth of n_prompt (-d), since our answers are decoded
    after the prompt, where attention over the context makes each token slower."""
    common = ("-m", model, "-ngl", "99", "-fa", "1", "-r", str(repeats), "-o", "json")
    return [
        [binary, "-p", str(n_prompt), "-n", "0", *common],
        [binary, "-p", "0", "-n", str(gen_tokens), "-d", str(n_prompt), *common],
    ]


def parse_llama_bench(output: str) -> dict[str, float]:
    """llama-bench's JSON records -> {"pp_tok_s", "tg_tok_s"} (its avg_ts of each test)."""
    out: dict[str, float] = {}
    for rec in json.loads(output):
        if rec.get("n_prompt", 0) > 0 and rec.get("n_gen", 0) == 0:
            out["pp_tok_s"] = round(float(rec["avg_ts"]), 2)
        elif rec.get("n_gen", 0) > 0 and rec.get("n_prompt", 0) == 0:
            out["tg_tok_s"] = round(float(rec["avg_ts"]), 2)
    return out


def run_llama_bench(
    binary: str, model: str, prompt_tokens: list[int], gen_tokens: int, repeats: int
) -> dict[int, dict]:
    native: dict[int, dict] = {}
    for n in prompt_tokens:
        native[n] = {}
        for cmd in llama_bench_commands(binary, model, n, gen_tokens, repeats):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                native[n]["error"] = (done.stderr or done.stdout).strip()[-500:]
                continue
            native[n].update(parse_llama_bench(done.stdout))
    return native


def format_generation(result: GenResult) -> str:
    lines = [
        f"generation: {result.model} on {result.device}, load {result.load_s:.2f} s, "
        f"n_ctx {result.n_ctx}, engine {result.engine}, sampling {result.sampling}",
        f"  {'prompt':>7} {'TTFT ms':>9} {'prefill tok/s':>14} {'decode tok/s':>13}"
        + (f" {'native pp':>10} {'native tg':>10} {'pp ratio':>9} {'tg ratio':>9}")
        * bool(result.native),
    ]
    for n, row in result.by_prompt.items():
        line = (
            f"  {row['prompt_tokens']:>7} {row['ttft_ms']:>9.1f} {row['prefill_tok_s']:>14.1f} "
            f"{row['decode_tok_s']:>13.2f}"
        )
        if result.native:
            nat, rat = result.native.get(n, {}), (result.ratio or {}).get(n, {})
            line += (
                f" {_fmt(nat.get('pp_tok_s')):>10} {_fmt(nat.get('tg_tok_s')):>10}"
                f" {_fmt(rat.get('pp')):>9} {_fmt(rat.get('tg')):>9}"
            )
            if "error" in nat:
                line += f"  (llama-bench failed: {nat['error'][:120]})"
        lines.append(line)
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def add_generation_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--model", help="GGUF file to measure with --generate")
    g.add_argument("--prompt-tokens", default="500,3500", help="prompt lengths, comma-separated")
    g.add_argument("--repeats", type=int, default=3, help="runs per prompt length (medians)")
    g.add_argument("--gen-tokens", type=int, default=128, help="tokens decoded per run")
    g.add_argument("--gpu-layers", type=int, default=-1, help="-1: all that fit, 0: CPU")
    g.add_argument("--threads", type=int, default=None, help="llama.cpp CPU threads")
    g.add_argument(
        "--in-process", action="store_true", help="engine in this process (the app uses a child)"
    )
    g.add_argument(
        "--cpu-sampling", action="store_true", help="sample on the CPU, not in llama.cpp's graph"
    )
    g.add_argument(
        "--serial-decode",
        action="store_true",
        help="queue each token's decode only after handing the token on (the order on the CPU)",
    )
    g.add_argument("--llama-bench", metavar="PATH", help="llama.cpp's llama-bench, for native")


def run_from_args(args) -> GenResult:
    tokens = [int(x) for x in str(args.prompt_tokens).split(",") if x.strip()]
    return bench_generation(
        args.model,
        tokens,
        repeats=max(1, args.repeats),
        gen_tokens=args.gen_tokens,
        gpu_layers=args.gpu_layers,
        llama_bench=args.llama_bench,
        threads=args.threads,
        in_process=args.in_process,
        cpu_sampling=args.cpu_sampling,
        serial_decode=args.serial_decode,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.generation")
    add_generation_arguments(p)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not args.model:
        p.error("--model is required")
    result = run_from_args(args)
    print(json.dumps({"generation": result.as_dict()}) if args.json else format_generation(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
