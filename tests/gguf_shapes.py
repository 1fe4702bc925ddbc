"""GGUF files of a chosen Llama shape, written in a blink: header, tensor table, and a data
section left sparse (zeros, no disk used). Their headers are what the model catalog reads; with a
real tokenizer borrowed (`tokenizer_from`), llama.cpp loads them too (zero weights: it answers
nonsense, but places layers as for the real model), which the GPU fit check relies on.

    python -m tests.gguf_shapes OUT.gguf 8b [TOKENIZER.gguf]
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from tests.gguf_files import _skip_value, _string, kv_string, kv_uint32

Q4_K, Q6_K, F32 = 12, 14, 0
_BLOCK = {Q4_K: (256, 144), Q6_K: (256, 210), F32: (1, 4)}
SHAPES = {  # layers, width, ffn, heads, kv heads (as ../shared/device/make_shape_model.py)
    "tiny": (2, 256, 512, 4, 2),
    "1b": (16, 2048, 8192, 32, 8),
    "3b": (28, 3072, 8192, 24, 8),
    "8b": (32, 4096, 14336, 32, 8),
}


def _kv_u64(key: str, value: int) -> bytes:
    return _string(key) + struct.pack("<IQ", 10, value)


def _nbytes(dims: tuple[int, ...], ttype: int) -> int:
    n = 1
    for d in dims:
        n *= d
    block, size = _BLOCK[ttype]
    return n // block * size


def _tokenizer_kvs(src: Path) -> tuple[list[bytes], int]:
    """The tokenizer.* key/values of a real GGUF, encoded as they are, and its vocabulary size."""
    with open(src, "rb") as fh:
        head = fh.read(64 << 20)
    _, _, _, n_kv = struct.unpack_from("<4sIQQ", head, 0)
    pos, out, vocab = 24, [], 0
    for _ in range(n_kv):
        start = pos
        (klen,) = struct.unpack_from("<Q", head, pos)
        key = head[pos + 8 : pos + 8 + klen].decode()
        pos += 8 + klen
        (vtype,) = struct.unpack_from("<I", head, pos)
        if key == "tokenizer.ggml.tokens":
            vocab = struct.unpack_from("<Q", head, pos + 8)[0]
        pos = _skip_value(head, pos + 4, vtype)
        if key.startswith("tokenizer.") and key != "tokenizer.chat_template":
            out.append(head[start:pos])
    return out, vocab


def write_shape(
    dst: Path,
    shape: str | tuple[int, int, int, int, int] = "tiny",
    vocab: int = 32000,
    context: int = 8192,
    name: str = "",
    template: str | None = "{{ messages }}",
    tokenizer_from: Path | None = None,
    architecture: str = "llama",
    file_type: int | None = 15,
) -> Path:
    """A Llama-shaped GGUF: Q4_K matrices, Q6_K output and ffn_down, F32 norms (Q4_K_M-like)."""
    layers, d, ff, nh, nkv = SHAPES[shape] if isinstance(shape, str) else shape
    tok: list[bytes] = []
    if tokenizer_from is not None:
        tok, vocab = _tokenizer_kvs(tokenizer_from)
    a = architecture
    kvs = [
        kv_string("general.architecture", a),
        kv_string("general.name", name or f"shape-{layers}x{d}"),
        kv_uint32(f"{a}.block_count", layers),
        kv_uint32(f"{a}.context_length", context),
        kv_uint32(f"{a}.embedding_length", d),
        kv_uint32(f"{a}.feed_forward_length", ff),
        kv_uint32(f"{a}.attention.head_count", nh),
        kv_uint32(f"{a}.attention.head_count_kv", nkv),
        kv_uint32(f"{a}.rope.dimension_count", d // nh),
        _string(f"{a}.attention.layer_norm_rms_epsilon") + struct.pack("<If", 6, 1e-5),
        kv_uint32(f"{a}.vocab_size", vocab),
        *tok,
    ]
    if file_type is not None:
        kvs.append(kv_uint32("general.file_type", file_type))
    if template is not None:
        kvs.append(kv_string("tokenizer.chat_template", template))
    hd = d // nh
    tensors: list[tuple[str, tuple[int, ...], int]] = [
        ("token_embd.weight", (d, vocab), Q4_K),
        ("output_norm.weight", (d,), F32),
        ("output.weight", (d, vocab), Q6_K),
    ]
    for i in range(layers):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", (d,), F32),
            (p + "attn_q.weight", (d, d), Q4_K),
            (p + "attn_k.weight", (d, nkv * hd), Q4_K),
            (p + "attn_v.weight", (d, nkv * hd), Q6_K),
            (p + "attn_output.weight", (d, d), Q4_K),
            (p + "ffn_norm.weight", (d,), F32),
            (p + "ffn_gate.weight", (d, ff), Q4_K),
            (p + "ffn_up.weight", (d, ff), Q4_K),
            (p + "ffn_down.weight", (ff, d), Q6_K),
        ]
    table = b""
    offset = 0
    for tname, dims, ttype in tensors:
        table += _string(tname) + struct.pack("<I", len(dims))
        table += b"".join(struct.pack("<Q", x) for x in dims) + struct.pack("<IQ", ttype, offset)
        offset += -(-_nbytes(dims, ttype) // 32) * 32
    header = struct.pack("<4sIQQ", b"GGUF", 3, len(tensors), len(kvs)) + b"".join(kvs) + table
    header += b"\0" * (-len(header) % 32)
    with open(dst, "wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + offset)  # sparse: no disk used for the zeros
    return dst


if __name__ == "__main__":
    out, shape = Path(sys.argv[1]), sys.argv[2]
    tokenizer = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    write_shape(out, shape, name=f"zero-llama-{shape}", tokenizer_from=tokenizer)
    print(out, out.stat().st_size)
