"""Torch and the GGUF engine side by side, as the app runs them: torch (a MiniLM-shaped encoder,
random weights) on CUDA in this process, the model on the GPU in the engine's child process.

    python -m bench.gpu_check --model M.gguf

Prints where the model landed, a short answer, how fast Stop ends a long prompt, and the
encoder's throughput after the model ran; ends with "VERIFY OK". Run it on a GPU machine (CI has
none); on a CPU it checks the same plumbing.
"""

from __future__ import annotations

import argparse
import time


def main(argv=None):
    args = argparse.ArgumentParser(prog="python -m bench.gpu_check")
    args.add_argument("--model", required=True)
    model = args.parse_args(argv).model
    import torch
    from transformers import BertConfig, BertModel

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = BertConfig(
        hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
    )
    m = BertModel(cfg).to(dev).eval()
    if dev == "cuda":
        m = m.half()
    x = torch.randint(0, 30000, (256, 128), device=dev)
    with torch.no_grad():
        m(x)
    print("torch on", dev, torch.__version__, flush=True)
    from app.core.cancel import CancelToken
    from app.core.llm_process import EngineProcess, gpu_offload_supported_isolated

    print("gpu offload (asked in a child):", gpu_offload_supported_isolated(), flush=True)
    e = EngineProcess(model, n_ctx=4096, gpu_layers=-1)
    r = e.load()
    print("model:", r.model, r.where, "load", round(r.load_s, 2), "s", flush=True)
    prompt = e.render([{"role": "user", "content": "What is the capital of France?"}])
    out = list(e.generate(prompt, CancelToken(), 32, 0))
    print("answer:", repr("".join(p for p in out if isinstance(p, str))), out[-1], flush=True)
    # Stop during a long prompt on the GPU
    tok = CancelToken()
    t0 = time.perf_counter()
    gen = e.generate(e.render([{"role": "user", "content": "word " * 3000}]), tok, 64, 0)
    tok.cancel()
    try:
        list(gen)
        print("stop: finished anyway")
    except Exception as exc:
        print("stop:", type(exc).__name__, round((time.perf_counter() - t0) * 1000, 1), "ms")
    rounds = 20 if dev == "cuda" else 1  # a CPU only checks that it still works
    with torch.no_grad():
        torch.cuda.synchronize() if dev == "cuda" else None
        t0 = time.perf_counter()
        for _ in range(rounds):
            m(x)
        torch.cuda.synchronize() if dev == "cuda" else None
    print(
        f"torch still works beside it: MiniLM-shape {next(m.parameters()).dtype} chunks/s",
        round(rounds * 256 / (time.perf_counter() - t0)),
        flush=True,
    )
    e.close()
    print("VERIFY OK")


if __name__ == "__main__":
    raise SystemExit(main())
