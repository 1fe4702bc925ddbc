"""The engine in its own process (what the app uses), with the real SmolLM2-135M on the CPU."""

from __future__ import annotations

import os

import pytest

from app.config import default_llm_path
from app.core.cancel import Cancelled, CancelToken
from app.core.gguf_check import ModelFileError
from app.core.llm import Generated, ModelLoadError
from app.core.llm_process import EngineProcess
from tests.engine_helpers import chat, collect

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def proc():
    e = EngineProcess(default_llm_path(), n_ctx=2048, gpu_layers=0)
    e.load()
    yield e
    e.close()


def test_child_answers_exactly_as_the_engine_in_this_process():
    # Both fresh: a warm KV cache evaluates the prompt in other slices, which may change the
    # last bits of the logits and so a greedy answer.
    from app.core.llm import LlamaEngine

    proc = EngineProcess(default_llm_path(), n_ctx=2048, gpu_layers=0)
    engine = LlamaEngine(default_llm_path(), n_ctx=2048, gpu_layers=0)
    proc.load()
    engine.load()
    try:
        _same_answers(proc, engine)
    finally:
        proc.close()
        engine.close()


def _same_answers(proc, engine):
    assert proc.report.where == "CPU" and proc.n_ctx == engine.n_ctx
    assert proc._proc.pid != os.getpid()
    prompt = chat(proc, "What is the capital of France?")
    assert prompt == chat(engine, "What is the capital of France?")
    assert proc.count_tokens("quarterly tax forms") == engine.count_tokens("quarterly tax forms")
    assert (
        proc.neutralize("a <|im_end|> b") == engine.neutralize("a <|im_end|> b") != "a <|im_end|> b"
    )
    ours, stats = collect(proc.generate(prompt, CancelToken(), 24, 0))
    theirs, _ = collect(engine.generate(prompt, CancelToken(), 24, 0))
    assert ours == theirs and ours.strip()
    assert isinstance(stats, Generated) and stats.prompt_tokens == proc.prompt_length(prompt)


def test_stop_reaches_the_child_during_the_prompt_and_between_tokens(proc):
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        next(proc.generate(chat(proc, "word " * 600), token, 16, 0))
    token = CancelToken()
    pieces = []
    stats = None
    for item in proc.generate(chat(proc, "Count from one to one hundred."), token, 200, 0):
        if isinstance(item, str):
            pieces.append(item)
            token.cancel()
        else:
            stats = item
    assert stats is not None and stats.stop_reason == "cancelled"
    assert stats.completion_tokens < 20  # a few pieces may be in the pipe when Stop comes
    # The next request starts clean.
    text, stats = collect(proc.generate(chat(proc, "Say hello."), CancelToken(), 8, 0))
    assert text and stats.stop_reason in ("eog", "length")


def test_a_reader_that_walks_away_leaves_no_leftovers(proc):
    gen = proc.generate(chat(proc, "Count from one to one hundred."), CancelToken(), 200, 0)
    assert isinstance(next(gen), str)
    gen.close()  # the window dropped the stream: the child is stopped and drained
    assert proc.count_tokens("two words") == 2
    text, stats = collect(proc.generate(chat(proc, "Say hello."), CancelToken(), 8, 0))
    assert isinstance(stats, Generated) and text


def test_a_child_that_dies_midway_is_reported_in_words_and_restarted_on_the_next_ask():
    e = EngineProcess(default_llm_path(), n_ctx=1024, gpu_layers=0)
    e.load()
    try:
        gen = e.generate(chat(e, "Count from one to one hundred."), CancelToken(), 200, 0)
        assert isinstance(next(gen), str)
        first_pid = e._proc.pid
        e._proc.kill()  # as llama.cpp aborting on a damaged tensor would
        with pytest.raises(ModelLoadError, match="stopped unexpectedly"):
            list(gen)
        assert not e.loaded
        text, stats = collect(e.generate(chat(e, "Say hello."), CancelToken(), 8, 0))
        assert text and isinstance(stats, Generated)
        assert e.loaded and e._proc.pid != first_pid
    finally:
        e.close()
    assert e._proc is None


def test_a_bad_model_file_fails_with_its_own_message(tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    e = EngineProcess(bad, gpu_layers=0)
    with pytest.raises(ModelFileError, match=r"notes\.gguf"):
        e.load()
    assert not e.loaded and e._proc is None


def test_the_prompt_is_assembled_in_one_call_to_the_models_process():
    """Counting, defusing and packing run in the model's process in one round trip, with the
    same result as string by string over the pipe."""
    from app.config import Settings, llm_path
    from app.core.events import Hit
    from app.core.llm_process import EngineProcess
    from app.core.prompt import assemble, system_prompt

    engine = EngineProcess(llm_path(Settings()), n_ctx=1024, gpu_layers=0)
    try:
        engine.load()
        text = "The pump needs service every 500 hours<|im_end|> of running. " * 20
        hits = [Hit(f"c{i}", f"/d/m{i}.pdf", i + 1, text, 0.9) for i in range(5)]
        history = [(f"Question {i}?", f"Answer {i} [1].") for i in range(3)]
        args = (system_prompt(True), "How often?", history, hits, 256, 5)
        calls = []
        real = engine._call
        engine._call = lambda op, *a: calls.append(op) or real(op, *a)
        messages, packed = engine.assemble(*args)
        assert calls == ["assemble"]
        engine._call = real
        assert (messages, packed) == assemble(engine, *args)
        assert 0 < len(packed) < 5  # a 1,024-token context holds only some of the passages
        assert "<|im_end|>" not in messages[-1]["content"]
        assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    finally:
        engine.close()


def test_a_long_prompt_reports_its_reading_progress():
    """With progress=True the model's process says how much of a long prompt it has read, slice
    by slice (the window shows it on a slow CPU); without it, only text and the figures."""
    from app.config import Settings, llm_path
    from app.core.cancel import CancelToken
    from app.core.llm import Generated, Prefill
    from app.core.llm_process import EngineProcess

    engine = EngineProcess(llm_path(Settings()), n_ctx=4096, gpu_layers=0, n_batch=256)
    try:
        engine.load()
        prompt = engine.render([{"role": "user", "content": "pump service hours " * 300}])
        total = engine.prompt_length(prompt)
        items = list(engine.generate(prompt, CancelToken(), 2, 0.0, progress=True))
        steps = [i for i in items if isinstance(i, Prefill)]
        assert len(steps) >= total // 256 and all(s.total == total for s in steps)
        assert [s.done for s in steps] == sorted(s.done for s in steps)
        assert steps[-1].done == total and isinstance(items[-1], Generated)
        plain = list(engine.generate(prompt + " ", CancelToken(), 2, 0.0))
        assert not any(isinstance(i, Prefill) for i in plain)
    finally:
        engine.close()
