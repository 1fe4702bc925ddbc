"""GGUF files made by tests: a real model with its metadata rewritten, or a bare hostile header.

with_metadata() copies a GGUF (the embedded SmolLM2) with some key/values replaced or added,
streaming the tensor data across unchanged, so llama.cpp loads it like the original. Written
here from the GGUF v3 layout (the gguf package is not a dependency).
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

_SCALAR = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY, UINT32 = 8, 9, 4


def _string(text: str | bytes) -> bytes:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("<Q", len(data)) + data


def kv_string(key: str, value: str | bytes) -> bytes:
    return _string(key) + struct.pack("<I", STRING) + _string(value)


def kv_uint32(key: str, value: int) -> bytes:
    return _string(key) + struct.pack("<I", UINT32) + struct.pack("<I", value)


def _skip_value(buf: bytes, pos: int, vtype: int) -> int:
    if vtype in _SCALAR:
        return pos + _SCALAR[vtype]
    if vtype == STRING:
        (n,) = struct.unpack_from("<Q", buf, pos)
        return pos + 8 + n
    if vtype == ARRAY:
        itype, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if itype in _SCALAR:
            return pos + _SCALAR[itype] * count
        for _ in range(count):
            pos = _skip_value(buf, pos, itype)
        return pos
    raise ValueError(f"unknown type {vtype}")


def with_metadata(src: Path, dst: Path, replace: dict[str, bytes]) -> Path:
    """Copy `src` to `dst`, each key in `replace` given the encoded key/value (kv_string...),
    added at the end when `src` lacks it; the value b"" removes the key."""
    with open(src, "rb") as fh:
        head = fh.read(64 << 20)  # the embedded model's metadata is a few MB
        magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", head, 0)
        assert magic == b"GGUF" and version == 3
        pos = 24
        entries: list[bytes] = []
        alignment = 32
        seen = set()
        for _ in range(n_kv):
            start = pos
            (klen,) = struct.unpack_from("<Q", head, pos)
            key = head[pos + 8 : pos + 8 + klen].decode()
            pos += 8 + klen
            (vtype,) = struct.unpack_from("<I", head, pos)
            pos = _skip_value(head, pos + 4, vtype)
            if key == "general.alignment":
                (alignment,) = struct.unpack_from("<I", head, pos - 4)
            seen.add(key)
            entries.append(replace.get(key, head[start:pos]))
        entries += [v for k, v in replace.items() if k not in seen]
        tensors_start = pos
        for _ in range(n_tensors):
            (nlen,) = struct.unpack_from("<Q", head, pos)
            pos += 8 + nlen
            (n_dims,) = struct.unpack_from("<I", head, pos)
            pos += 4 + 8 * n_dims + 4 + 8
        tensor_infos = head[tensors_start:pos]
        data_start = -(-pos // alignment) * alignment
        kept = [e for e in entries if e]
        out = struct.pack("<4sIQQ", b"GGUF", 3, n_tensors, len(kept)) + b"".join(kept)
        out += tensor_infos
        out += b"\0" * (-len(out) % alignment)
        with open(dst, "wb") as w:
            w.write(out)
            fh.seek(data_start)
            shutil.copyfileobj(fh, w, 8 << 20)
    return dst


def with_template(src: Path, dst: Path, template: str | bytes) -> Path:
    """The model `src` with `template` as its chat template."""
    return with_metadata(
        src, dst, {"tokenizer.chat_template": kv_string("tokenizer.chat_template", template)}
    )


def bare(dst: Path, kvs: list[bytes]) -> Path:
    """A GGUF v3 header with these key/values and no tensors (enough for the header check)."""
    header = struct.pack("<4sIQQ", b"GGUF", 3, 0, len(kvs)) + b"".join(kvs)
    dst.write_bytes(header + b"\0" * (-len(header) % 32))  # the data section starts aligned
    return dst


def nested_arrays(key: str, depth: int) -> bytes:
    """A key whose value is an array of one array of one array ... `depth` deep, of uint32."""
    body = struct.pack("<IQ", ARRAY, 1) * (depth - 1) + struct.pack("<IQI", UINT32, 1, 7)
    return _string(key) + struct.pack("<I", ARRAY) + body
