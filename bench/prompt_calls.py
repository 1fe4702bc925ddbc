"""The engine's part of the time to first token: the prompt assembled with one call to the
model's process per string (as ChatSession did: 6 calls for one passage and no history, 48 for
five passages and five turns) against one call (LlamaEngine.assemble). Same process, alternating,
the two results compared. `python -m bench.prompt_calls`."""

import statistics
import time

from app.config import Settings, llm_path
from app.core.events import Hit
from app.core.llm_process import EngineProcess
from app.core.prompt import assemble, system_prompt


def main():
    engine = EngineProcess(llm_path(Settings()), n_ctx=4096, gpu_layers=0)
    engine.load()
    text = "The pump needs service every 500 hours of running, and the filter is changed then. " * 6
    for n_hits, n_turns in ((1, 0), (5, 5)):
        hits = [Hit(f"c{i}", f"/docs/manual{i}.pdf", i + 1, text, 0.9) for i in range(n_hits)]
        history = [
            (f"Question {i} about the pump?", f"Answer {i}: every 500 hours [1].")
            for i in range(n_turns)
        ]
        args = (system_prompt(True), "How often is the pump serviced?", history, hits, 512, 5)
        before, after = [], []
        for _ in range(40):
            t = time.perf_counter()
            a = assemble(engine, *args)
            before.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            b = engine.assemble(*args)
            after.append((time.perf_counter() - t) * 1000)
            assert a == b
        print(
            f"{n_hits} hit(s), {n_turns} turns: per-string calls p50 "
            f"{statistics.median(before):.2f} ms (min {min(before):.2f}); one call p50 "
            f"{statistics.median(after):.2f} ms (min {min(after):.2f})"
        )
    engine.close()


if __name__ == "__main__":
    main()
