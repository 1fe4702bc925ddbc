"""Sentence embeddings with sentence-transformers: loaded lazily, batched, on the GPU if any.

The model is loaded from a local folder only (the embedded all-MiniLM-L6-v2 by default); nothing is
ever fetched from a hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np


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
        self._batch_size = batch_size  # None: 256 on a GPU (fewer launches), 64 on the CPU
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
        if self._batch_size is None:
            return 256 if self.device.startswith("cuda") else 64
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
