"""Sentence embeddings with sentence-transformers: loaded lazily, batched, on the GPU if any.

The model is loaded from a local folder only (the embedded all-MiniLM-L6-v2 by default); nothing is
ever fetched from a hub.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.core.cancel import NEVER, CancelToken


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
        self._model = None
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
                        # AMX / AVX512-BF16 cores run bf16 matmuls ~3x faster than fp32; the
                        # vectors agree with fp32 ones to a cosine of 0.9999 (bench: NOTES.md).
                        import torch

                        model.to(torch.bfloat16)
                    self._model = model
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
        for at in range(0, len(order), self.batch_size):
            cancel.raise_if_cancelled()
            picked = order[at : at + self.batch_size]
            # Widths in steps of 16: oneDNN keeps a compiled kernel and its buffers per input
            # shape, and one width per row length grew the process ~350 MB over a large corpus.
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
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


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
