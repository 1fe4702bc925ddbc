"""A model's name as people read it.

A GGUF's `general.name` is often a training run's label ("Smollm2 135M 8k Lc100K Mix1 Ep2");
the file's own name, as its publisher chose it ("SmolLM2-135M-Instruct.Q4_1.gguf"), usually says
more. Files named by their hash (Ollama's blobs) or generically fall back to the metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

_QUANT = re.compile(r"[.\-_](?:i?q\d[\w]*|f16|f32|bf16|fp16)$", re.IGNORECASE)
_HASHLIKE = re.compile(r"^(?:sha256[-:])?[0-9a-f]{32,}$", re.IGNORECASE)
_GENERIC = {"model", "ggml-model", "gguf", "llm", "weights"}


def display_name(path: str | Path | None, metadata_name: str = "") -> str:
    """The file's name without its quantization suffix, else the metadata's name."""
    stem = Path(path).name if path else ""
    if stem.lower().endswith(".gguf"):
        stem = stem[:-5]
    base = _QUANT.sub("", stem)
    if base and not _HASHLIKE.match(base) and base.lower() not in _GENERIC:
        return base[:80]
    return (metadata_name or stem or "model")[:80]
