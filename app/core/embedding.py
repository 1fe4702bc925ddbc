"""Sentence embeddings with sentence-transformers: loaded lazily, batched, on the GPU if any (in
streams of their own threads on the CPU).

The model is loaded from a local folder only (the embedded all-MiniLM-L6-v2 by default); nothing is
ever fetched from a hub.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np

from app.core.cancel import NEVER, CancelToken

log = logging.getLogger(__name__)


class EmbedderError(Exception):
    """The embedding model folder is missing or not a sentence-transformers model."""


def model_identity(path: Path) -> str:
    """A stable name for the model that made a library's vectors: folder name + config digest,
    so two different models in folders of the same name are still told apart."""
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "config_sentence_transformers.json"):
        f = path / name
        if f.is_file():
            digest.update(f.read_bytes())
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        label = cfg.get("_name_or_path") or path.name
    except (OSError, ValueError):
        label = path.name
    return f"{Path(str(label)).name}@{digest.hexdigest()[:12]}"


class Embedder:
    """all-MiniLM-L6-v2 (or any sentence-transformers folder). Thread-safe after load()."""

    def __init__(
        self,
        path: Path | None,
        device: str | None = None,
        batch_size: int | None = None,
        cpu_bf16: bool = True,
        cpu_streams: int | None = None,
    ) -> None:
        if path is None or not (Path(path) / "config.json").is_file():
            raise EmbedderError(
                f"No embedding model at '{path}'. Point Settings > Embedding model at a "
                "sentence-transformers folder, or reinstall Confidant to restore the default."
            )
        self.path = Path(path)
        self.model_id = model_identity(self.path)
        self._device = device
        self._batch_size = batch_size  # rows per forward pass; None: see batch_size
        self.cpu_bf16 = cpu_bf16  # use bf16 on CPUs with native bf16 units (see load())
        self._cpu_streams = cpu_streams  # forward passes at once on the CPU; None: see streams
        self._model = None
        self._pool: ThreadPoolExecutor | None = None
        self._query_pool: ThreadPoolExecutor | None = None
        self._query_lane_failed = False
        self._lock = threading.Lock()

    def load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    device = self._device or _best_device()
                    model = SentenceTransformer(
                        str(self.path), device=device, local_files_only=True
                    )
                    if device.startswith("cuda"):
                        model.half()
                    elif device == "cpu" and self.cpu_bf16 and _cpu_has_native_bf16():
                        # AMX / AVX512-BF16 cores run bf16 matmuls several times faster than
                        # fp32, and the vectors agree with fp32 ones (bench/NOTES.md).
                        import torch

                        model.to(torch.bfloat16)
                    self._model = model
                    _out_of_the_collectors_way()
        return self._model

    @property
    def device(self) -> str:
        return str(self.load().device)

    @property
    def batch_size(self) -> int:
        """Rows per forward pass: 256 on a GPU (fewer launches); 16 on the CPU, where small
        batches keep the activations in cache and run ~10% faster per token than 64 (NOTES.md)."""
        if self._batch_size is None:
            return 256 if self.device.startswith("cuda") else 16
        return self._batch_size

    @property
    def streams(self) -> int:
        """Forward passes run at once by embed_tokens(): one on a GPU; on the CPU, torch's
        intra-op threads shared out 2 to a stream (1 on machines of 2 or 3), at most 8 streams.
        One pass's OpenMP team waits at every barrier for its slowest thread, and on a busy
        machine (the PDF worker, Chroma) that thread has lost its core; small teams side by side
        keep the cores busy: 2 cores, 2 streams: +16-21% ingestion; 16 cores, 8 streams: +55%
        (8 x 2 threads beat 4 x 4 and 16 x 1; NOTES.md)."""
        if self.device != "cpu":
            return 1
        if self._cpu_streams is not None:
            return max(1, self._cpu_streams)
        import torch

        threads = torch.get_num_threads()
        return min(8, max(1, threads // (1 if threads < 4 else 2)))

    @property
    def tokenizer(self):
        return self.load().tokenizer

    @property
    def max_tokens(self) -> int:
        """Longest input the model reads, less its two special tokens."""
        return int(self.load().max_seq_length) - 2

    @property
    def dimensions(self) -> int:
        model = self.load()
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self.load().encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    @functools.cached_property
    def _frame(self) -> tuple[list[int], list[int]] | None:
        """The special tokens the tokenizer puts around a text ([CLS] ... [SEP] for BERT), read
        off a sample, since tokenizers differ and transformers 5 has no public call for it. None
        when token ids cannot stand in for text: encode() would prepend a prompt, or the
        specials are not a fixed prefix and suffix."""
        model = self.load()
        if getattr(model, "default_prompt_name", None):
            return None
        sample = "confidant sample text"
        bare = model.tokenizer(sample, add_special_tokens=False)["input_ids"]
        full = model.tokenizer(sample, add_special_tokens=True)["input_ids"]
        for k in range(len(full) - len(bare) + 1):
            if full[k : k + len(bare)] == bare:
                return full[:k], full[k + len(bare) :]
        return None

    def embed_tokens(
        self, ids: Sequence[Sequence[int]], texts: Sequence[str], cancel: CancelToken = NEVER
    ) -> np.ndarray:
        """embed(texts) for texts the chunker has already tokenized with this model's tokenizer
        (`ids`, without special tokens): the same vectors, without tokenizing the texts again
        (a model that cannot take ids gets the texts). Longest first, as encode() does, so each
        forward batch pads little: the more rows given at once, the less padding. `cancel` is
        checked before each forward batch (raises Cancelled)."""
        if self._frame is None:
            cancel.raise_if_cancelled()
            return self.embed(list(texts))
        model = self.load()
        out = np.zeros((len(ids), self.dimensions), dtype=np.float32)
        if not ids:
            return out
        import torch

        tokenizer = model.tokenizer
        head, tail = self._frame
        limit = int(model.max_seq_length)
        room = limit - len(head) - len(tail)  # encode() truncates the same
        rows = [[*head, *x[:room], *tail] for x in ids]
        order = sorted(range(len(rows)), key=lambda r: -len(rows[r]))
        with_types = "token_type_ids" in tokenizer.model_input_names
        pad = tokenizer.pad_token_id or 0

        def forward(picked: list[int]) -> None:
            # Widths in steps of 16: oneDNN keeps a compiled kernel and its buffers per input
            # shape, and one width per row length grew the process by hundreds of MB over a
            # large corpus.
            width = min(-(-len(rows[picked[0]]) // 16) * 16, limit)
            input_ids = np.full((len(picked), width), pad, dtype=np.int64)
            mask = np.zeros((len(picked), width), dtype=np.int64)
            for j, r in enumerate(picked):
                input_ids[j, : len(rows[r])] = rows[r]
                mask[j, : len(rows[r])] = 1
            features = {
                "input_ids": torch.from_numpy(input_ids).to(model.device),
                "attention_mask": torch.from_numpy(mask).to(model.device),
            }
            if with_types:
                features["token_type_ids"] = torch.zeros_like(features["input_ids"])
            with torch.inference_mode():
                vectors = model(features)["sentence_embedding"].float()
                vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
            out[picked] = vectors.cpu().numpy()

        step = self.batch_size
        self._run(forward, [order[at : at + step] for at in range(0, len(order), step)], cancel)
        return out

    def _run(
        self, forward: Callable[[list[int]], None], passes: list[list[int]], cancel: CancelToken
    ) -> None:
        """forward(rows) for each pass, `self.streams` at a time; Stop is checked before each
        pass starts, and the call returns only when no pass is running any more."""

        def guarded(picked: list[int]) -> None:
            cancel.raise_if_cancelled()
            forward(picked)

        pool = self._stream_pool()
        if pool is None:
            for picked in passes:
                guarded(picked)
            return
        futures = [pool.submit(guarded, picked) for picked in passes]
        wait(futures)  # a Cancelled pass makes the rest return at once: none left running
        for future in futures:
            future.result()  # the first Cancelled or error, raised here

    def _stream_pool(self) -> ThreadPoolExecutor | None:
        """The CPU's stream threads, each with its share of torch's intra-op threads; None for
        one stream (passes run on the caller's thread, as on a GPU)."""
        streams = self.streams
        if streams == 1:
            return None
        with self._lock:
            if self._pool is None:
                try:
                    self._pool = _torch_thread_pool(streams)
                except threading.BrokenBarrierError:
                    log.warning("embedding streams did not start; embedding in one stream")
                    self._cpu_streams = 1
        return self._pool

    def embed_query(self, text: str) -> np.ndarray:
        """One question's vector. On the CPU it is computed on a thread of its own with one
        torch thread: a question is a few dozen tokens, and a team of several OpenMP threads
        waits at every barrier for whichever of them has lost its core to the ingestion streams
        or another program, which made a question's embedding a hundred times slower on a
        busy machine (`confidant bench --retrieval-while-ingesting` measures it)."""
        return self.embed_aside([text])[0]

    def embed_aside(self, texts: list[str]) -> np.ndarray:
        """embed(texts) for a few short texts a person is waiting for (a question, the
        sentences of an answer), on the questions' own thread: see embed_query."""
        lane = self._query_lane() if self.device == "cpu" else None
        if lane is None:
            return self.embed(texts)
        return lane.submit(self.embed, texts).result()

    def _query_lane(self) -> ThreadPoolExecutor | None:
        """The questions' thread (None if it could not start: the caller embeds instead)."""
        with self._lock:
            if self._query_pool is None and not self._query_lane_failed:
                try:
                    self._query_pool = _torch_thread_pool(1, threads_each=1, name="embed-query")
                except threading.BrokenBarrierError:
                    log.warning("the question thread did not start; embedding questions inline")
                    self._query_lane_failed = True
        return self._query_pool


def _torch_thread_pool(
    streams: int, threads_each: int | None = None, name: str = "embed-stream"
) -> ThreadPoolExecutor:
    """`streams` threads sharing this process's torch intra-op threads between them (or
    `threads_each` threads each), started now. torch.set_num_threads() is per thread for
    OpenMP but also sets the default that each thread takes on its first torch call, so the
    default is put back once the pool's threads have taken their own (threads that start
    torch work in that instant may get the share)."""
    import torch

    default = torch.get_num_threads()
    each = threads_each or max(1, default // streams)
    started = threading.Barrier(streams + 1)

    def start() -> None:
        try:
            torch.get_num_threads()  # the thread's first call: takes the default now, not later
            torch.set_num_threads(each)
        except BaseException:
            started.abort()  # the caller gives up at once rather than waiting for this thread
            raise
        started.wait()

    pool = ThreadPoolExecutor(streams, thread_name_prefix=name, initializer=start)
    try:
        for _ in range(streams):
            pool.submit(lambda: None)  # no worker is idle yet, so each task starts one
        started.wait(timeout=60)  # raises BrokenBarrierError if a thread failed or hung
    except threading.BrokenBarrierError:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        torch.set_num_threads(default)
    return pool


def _cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AMX-BF16 or AVX512-BF16 (Sapphire Rapids, Zen 4 and later), where
    oneDNN runs bf16 matmuls natively; elsewhere bf16 is emulated and slower than fp32."""
    if os.environ.get("CONFIDANT_EMBED_FP32"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def _best_device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return "cuda"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return "cpu"


def _out_of_the_collectors_way() -> None:
    """Move every object alive now (torch, transformers, the model: about half a million)
    into the permanent generation that garbage collections skip (gc.freeze).

    CPython's full collection walks every tracked object while holding the GIL. Without this,
    each one stalled every thread of the window's process, its GUI thread included, for a
    third of a second once the model was loaded (docs/performance.md, "folders in sync").
    Frozen objects are still freed when nothing refers to them; only reference cycles among
    them are kept, and the model lives as long as the process."""
    gc.freeze()
