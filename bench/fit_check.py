"""Check the model catalog's GPU fit estimate against what llama.cpp really places.

For each amount of GPU memory left free (another process holds the rest, through torch's
allocator), it estimates the layers that fit (app/core/model_catalog.py, from nvidia-smi's free
memory), then finds in a fresh process the most layers that load with their context (bisection
over n_gpu_layers with the engine's own loader), and what the engine's Auto plan placed.

    python -m bench.fit_check --model M.gguf --leave-gib 3,5,7 [--ctx 4096]

Runs on the GPU machine without chromadb or Qt (../shared/device/README.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

HOG = """
import sys, time, torch
free, _ = torch.cuda.mem_get_info()
keep = int(float(sys.argv[1]) * (1 << 30))
block = torch.empty(max(0, free - keep), dtype=torch.uint8, device="cuda")
print("held", block.numel(), flush=True)
sys.stdin.read()
"""

PLACE = """
import json, sys
from app.core.llm import LlamaEngine
path, ctx = sys.argv[1], int(sys.argv[2])
eng = LlamaEngine(path, n_ctx=ctx, gpu_layers=-1, check_template=False)
from app.core.gguf_check import inspect_gguf
total = inspect_gguf(path).layers + 1
import llama_cpp as ll
ll.llama_backend_init()
def loads(n):
    try:
        model, c = eng._load_with(n)
    except MemoryError:
        return False
    ll.llama_free(c); ll.llama_model_free(model)
    return True
lo, hi = 0, total  # lo loads; find the largest n that does
if loads(hi):
    lo = hi
else:
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if loads(mid): lo = mid
        else: hi = mid
print(json.dumps({"max_layers_that_load": lo, "total": total}))
"""

# The engine's Auto plan in a process of its own: in the bisecting one, CUDA's context and the
# allocator's leftovers would take memory a fresh program has.
AUTO = """
import json, sys
from app.core.llm import LlamaEngine
rep = LlamaEngine(sys.argv[1], n_ctx=int(sys.argv[2]), gpu_layers=-1, check_template=False).load()
print(json.dumps({"auto_placed": rep.gpu_layers, "auto_attempts": list(rep.attempts)}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--leave-gib", default="3,5,7")
    p.add_argument("--ctx", type=int, default=4096)
    args = p.parse_args(argv)
    from app.core.gguf_check import inspect_gguf
    from app.core.model_catalog import detect_memory, estimate_fit

    info = inspect_gguf(args.model)
    rows = []
    for leave in [float(x) for x in args.leave_gib.split(",")]:
        hog = subprocess.Popen(
            [sys.executable, "-c", HOG, str(leave)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hog.stdout.readline()
        time.sleep(0.5)
        memory = detect_memory()
        fit = estimate_fit(info, memory, args.ctx)
        placed = {}
        for script in (AUTO, PLACE):
            out = subprocess.run(
                [sys.executable, "-c", script, args.model, str(args.ctx)],
                capture_output=True,
                text=True,
                timeout=300,
            )
            try:
                placed.update(json.loads(out.stdout.strip().splitlines()[-1]))
            except (ValueError, IndexError):
                placed["error"] = out.stderr[-2000:]
        hog.stdin.close()
        hog.wait(timeout=30)
        row = {
            "leave_gib": leave,
            "free_gib": round(memory.gpu_free / (1 << 30), 2),
            "estimate": fit.gpu_layers,
            "fits": fit.fits,
            **placed,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
