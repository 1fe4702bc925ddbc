"""CPU embedding in streams: two forward passes at once, each on a thread of its own share of
torch's threads, giving the vectors one stream gives, stopping between passes."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from app.config import default_embedder_path
from app.core.cancel import Cancelled, CancelToken
from app.core.embedding import Embedder

WORDS = "the tenant shall pay the quarterly rent of the premises before the first day".split()


def _chunks(n: int) -> list[str]:
    # Different lengths, so passes differ in width as real windows do.
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(5 + i % 60)) for i in range(n)]


@pytest.fixture(scope="module")
def two_streams():
    e = Embedder(default_embedder_path(), device="cpu", cpu_streams=2)
    e.load()
    return e


def _ids(embedder: Embedder, texts: list[str]) -> list[list[int]]:
    return [embedder.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


def _embed_watching_threads(embedder: Embedder, texts: list[str]):
    """embed_tokens(texts), and the names of the threads its forward passes ran on."""
    names = set()
    hook = embedder.load().register_forward_pre_hook(
        lambda _m, _a: names.add(threading.current_thread().name)
    )
    try:
        return embedder.embed_tokens(_ids(embedder, texts), texts), names
    finally:
        hook.remove()


def test_two_streams_run_passes_on_their_own_threads_and_give_the_same_vectors(
    two_streams, embedder
):
    default_before = torch.get_num_threads()
    texts = _chunks(160)  # 10 passes of 16
    seen = []
    hook = two_streams.load().register_forward_pre_hook(
        lambda _m, _a: seen.append((threading.current_thread().name, torch.get_num_threads()))
    )
    try:
        vectors = two_streams.embed_tokens(_ids(two_streams, texts), texts)
    finally:
        hook.remove()
    assert two_streams.streams == 2
    assert len(seen) == 10
    names = {name for name, _ in seen}
    assert len(names) == 2 and all(n.startswith("embed-stream") for n in names), names
    # Each stream's share of the threads: with 2 or more to share, fewer than the default.
    share = max(1, default_before // 2)
    assert {threads for _, threads in seen} == {share}
    # The default is put back: this thread and threads started later keep it.
    assert torch.get_num_threads() == default_before
    with ThreadPoolExecutor(1) as fresh:
        assert fresh.submit(torch.get_num_threads).result() == default_before

    reference = embedder.embed(texts)  # encode(), one stream, on this thread
    cosines = np.sum(vectors * reference, axis=1)
    assert vectors.shape == reference.shape and cosines.min() > 0.998


def test_stop_in_one_stream_lets_no_pass_start_and_returns_when_none_runs(two_streams):
    texts = _chunks(320)  # 20 passes
    cancel = CancelToken()
    lock = threading.Lock()
    state = {"started": 0, "running": 0, "after_cancel": 0}

    def before(_m, _a):
        with lock:
            state["started"] += 1
            state["running"] += 1
            if cancel.cancelled:
                state["after_cancel"] += 1
            if state["started"] == 3:
                cancel.cancel()  # a Stop click, landing while passes run

    def after(_m, _a, _out):
        with lock:
            state["running"] -= 1

    model = two_streams.load()
    hooks = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        with pytest.raises(Cancelled):
            two_streams.embed_tokens(_ids(two_streams, texts), texts, cancel)
        running_on_return = state["running"]
    finally:
        for h in hooks:
            h.remove()
    assert state["after_cancel"] == 0
    assert state["started"] <= 4  # the third pass and at most one already in the other stream
    assert running_on_return == 0
    # The pool survives a cancel: the next call embeds everything.
    again = two_streams.embed_tokens(_ids(two_streams, texts[:40]), texts[:40])
    assert np.allclose(np.linalg.norm(again, axis=1), 1.0, atol=1e-3)


def test_one_stream_runs_passes_on_the_calling_thread():
    one = Embedder(default_embedder_path(), device="cpu", cpu_streams=1)
    _, names = _embed_watching_threads(one, _chunks(48))
    assert one.streams == 1 and names == {threading.current_thread().name}


@pytest.mark.parametrize(("threads", "streams"), [(1, 1), (2, 2), (3, 3), (4, 2), (16, 8), (64, 8)])
def test_the_cpu_threads_are_shared_out_two_to_a_stream(embedder, monkeypatch, threads, streams):
    # One stream per core on small machines; on larger ones 2 threads a stream (16 cores: 8 x 2
    # beat 4 x 4 and 16 x 1), and never more than 8 streams (each costs memory).
    monkeypatch.setattr(embedder, "_cpu_streams", None)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert embedder.streams == streams


def test_streams_that_cannot_start_leave_one_stream_not_a_hang(monkeypatch):
    real = torch.set_num_threads

    def refuse_in_streams(n: int) -> None:
        if threading.current_thread().name.startswith("embed-stream"):
            raise RuntimeError("no threads for you")
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", refuse_in_streams)
    e = Embedder(default_embedder_path(), device="cpu", cpu_streams=2)
    vectors, names = _embed_watching_threads(e, _chunks(40))
    assert e.streams == 1 and names == {threading.current_thread().name}
    assert vectors.shape == (40, e.dimensions)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_a_question_is_embedded_on_its_own_thread_with_one_torch_thread(embedder):
    # A team of several OpenMP threads waits at each barrier for a thread that lost its core
    # to the ingestion streams; the question's own single thread never waits for another.
    default_before = torch.get_num_threads()
    seen = []
    hook = embedder.load().register_forward_pre_hook(
        lambda _m, _a: seen.append((threading.current_thread().name, torch.get_num_threads()))
    )
    try:
        vector = embedder.embed_query("When is the quarterly rent due?")
        aside = embedder.embed_aside(["the rent", "the premises"])
    finally:
        hook.remove()
    assert [name.startswith("embed-query") for name, _ in seen] == [True, True]
    assert {threads for _, threads in seen} == {1}
    assert torch.get_num_threads() == default_before  # the caller's threads are untouched
    same = embedder.embed(["When is the quarterly rent due?", "the rent", "the premises"])
    assert np.allclose(vector, same[0], atol=2e-2) and np.allclose(aside, same[1:], atol=2e-2)


def test_a_question_lane_that_cannot_start_embeds_on_the_caller(monkeypatch):
    real = torch.set_num_threads

    def refuse_in_the_lane(n: int) -> None:
        if threading.current_thread().name.startswith("embed-query"):
            raise RuntimeError("no threads for you")
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", refuse_in_the_lane)
    e = Embedder(default_embedder_path(), device="cpu", cpu_streams=1)
    names = set()
    e.load().register_forward_pre_hook(lambda _m, _a: names.add(threading.current_thread().name))
    assert e.embed_query("rent").shape == (e.dimensions,)
    assert names == {threading.current_thread().name}


def test_a_loaded_model_is_out_of_the_garbage_collectors_way():
    """Full collections skip what loading the model brought in (gc.freeze): walking torch,
    transformers and the model stalled every thread, the window's too, for ~1/3 s each."""
    import gc

    gc.unfreeze()
    embedder = Embedder(default_embedder_path(), device="cpu")
    embedder.load()
    frozen = gc.get_freeze_count()
    assert frozen > 50_000  # the modules and the model, not a handful
    tracked = len(gc.get_objects())
    assert tracked < frozen  # what a full collection still walks is the smaller part
