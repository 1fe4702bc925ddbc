"""Validate a GGUF file before llama.cpp sees it.

llama.cpp aborts the whole process on some malformed files, so we read the header ourselves:
magic, version, every key/value and tensor description, and check that the file is long enough to
hold every tensor. Pure Python, no dependencies; reads a few MB at most.

The file is someone else's: arrays nested without end, counts in the billions and names with
terminal escapes are answered with "damaged or unsafe" and shown escaped, never followed.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from app.core.safe_text import printable

MAGIC = b"GGUF"
_BLOCK = re.compile(r"blk\.(\d{1,6})\.")
MAX_DEPTH = 4  # arrays of arrays: real files nest at most once
KEEP_ITEMS = 4096  # arrays longer than this are skipped, not kept (token tables are not kept)
# ggml type -> (block size in elements, bytes per block); the common ones. Unknown types are
# checked by offset only.
_TYPE_SIZE = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 36),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
}
_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


class ModelFileError(Exception):
    """The model file cannot be used; the message says why and what to do."""


@dataclass
class GGUFInfo:
    path: Path
    version: int
    size: int
    tensors: int
    metadata: dict = field(default_factory=dict)
    params: int = 0  # weights in all tensors (elements)
    block_bytes: dict[int, int] = field(default_factory=dict)  # bytes of blk.N.* tensors, by N
    other_bytes: dict[str, int] = field(default_factory=dict)  # bytes of the rest, by tensor name
    type_bytes: dict[int, int] = field(default_factory=dict)  # bytes by ggml type

    def meta_int(self, key: str, default: int = 0) -> int:
        """`{architecture}.{key}` as an int (the first item of a per-layer array)."""
        value = self.metadata.get(f"{self.architecture}.{key}", default)
        if isinstance(value, list):
            value = value[0] if value else default
        try:
            return int(value)
        except (TypeError, ValueError):
            return default

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "unknown"))

    @property
    def name(self) -> str:
        """The model's name from its metadata (or the file's), safe to print and show."""
        return printable(self.metadata.get("general.name") or self.path.stem, 120)

    @property
    def layers(self) -> int:
        return int(self.metadata.get(f"{self.architecture}.block_count", 0))

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) else None


class _Reader:
    def __init__(self, fh, size: int) -> None:
        self.fh, self.size = fh, size

    def read(self, n: int) -> bytes:
        if n < 0 or self.fh.tell() + n > self.size:
            raise EOFError
        data = self.fh.read(n)
        if len(data) != n:
            raise EOFError
        return data

    def skip_strings(self, count: int, limit: int = 1 << 24) -> None:
        """Pass over `count` strings, parsing their lengths in memory (a call per string
        costs a second on a large vocabulary)."""
        buf, pos = b"", 0
        for _ in range(count):
            if pos + 8 > len(buf):
                buf, pos = buf[pos:] + self.read(min(1 << 20, self.size - self.fh.tell())), 0
                if len(buf) < 8:
                    raise EOFError
            (n,) = struct.unpack_from("<Q", buf, pos)
            if n > limit:
                raise ValueError("string too long")
            pos += 8 + n
            if pos > len(buf):  # the string runs past what was read: skip its rest
                self.read(pos - len(buf))
                buf, pos = b"", 0
        self.fh.seek(pos - len(buf), os.SEEK_CUR)  # give back what was read ahead

    def unpack(self, fmt: str):
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self, limit: int = 1 << 24) -> str:
        n = self.unpack("<Q")
        if n > limit:
            raise ValueError("string too long")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool, depth: int = 0):
        if vtype in _SCALAR:
            return self.unpack(_SCALAR[vtype])
        if vtype == 8:
            return self.string()
        if vtype == 9:
            if depth >= MAX_DEPTH:
                raise _Unsafe(f"arrays nested more than {MAX_DEPTH} deep")
            itype, count = self.unpack("<I"), self.unpack("<Q")
            if count > 1 << 26:
                raise ValueError("array too long")
            keep = keep and count <= KEEP_ITEMS
            if itype in _SCALAR and not keep:  # skip big token tables quickly
                self.read(struct.calcsize(_SCALAR[itype]) * count)
                return None
            if itype == 8 and not keep:  # token and merge tables: hundreds of thousands
                self.skip_strings(count)
                return None
            if not keep:
                for _ in range(count):
                    self.value(itype, False, depth + 1)
                return None
            return [self.value(itype, True, depth + 1) for _ in range(count)]
        raise ValueError(f"unknown value type {vtype}")


class _Unsafe(ValueError):
    """A structure no model file has, made to hurt the reader."""


def _not_a_file(path: Path, mode: int) -> ModelFileError:
    shown = printable(path, 300)
    if stat.S_ISDIR(mode):
        what = "a folder"
    elif stat.S_ISFIFO(mode):
        what = "a pipe (FIFO)"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "a device"
    elif stat.S_ISSOCK(mode):
        what = "a socket"
    else:
        what = "not a regular file"
    return ModelFileError(f"'{shown}' is {what}, not a model file. Choose a .gguf file.")


def inspect_gguf(path: str | Path) -> GGUFInfo:
    """Read and check the header; raise ModelFileError with a plain message if unusable."""
    path = Path(path).expanduser()
    name = printable(path.name, 120)
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ModelFileError(
            f"The model file '{printable(path, 300)}' does not exist. Choose a .gguf file in "
            "Settings (or pass --model PATH)."
        ) from None
    except OSError as exc:
        raise ModelFileError(f"'{name}' cannot be read ({exc.strerror or exc}).") from exc
    if not stat.S_ISREG(mode):
        raise _not_a_file(path, mode)
    try:
        # Non-blocking: a file swapped for a pipe since the check must not hang the open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with open(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise _not_a_file(path, st.st_mode)
            size = st.st_size
            r = _Reader(fh, size)
            if size < 24 or r.read(4) != MAGIC:
                raise ModelFileError(
                    f"'{name}' is not a GGUF model (llama.cpp's format). Download "
                    "a .gguf file (for example a Q4_K_M quantization) and choose it."
                )
            version = r.unpack("<I")
            if version not in (2, 3):
                raise ModelFileError(
                    f"'{name}' is GGUF version {version}, which this Confidant "
                    "cannot read. Use a more recent conversion of the model."
                )
            n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
            if n_tensors > 1 << 20 or n_kv > 1 << 20:
                raise ValueError("absurd header counts")
            meta = {}
            for _ in range(n_kv):
                key = r.string(1 << 16)
                vtype = r.unpack("<I")
                keep = not key.startswith("tokenizer.ggml.")
                meta[key] = r.value(vtype, keep)
            alignment = int(meta.get("general.alignment", 32) or 32)
            ends = []
            params = 0
            block_bytes: dict[int, int] = {}
            other_bytes: dict[str, int] = {}
            type_bytes: dict[int, int] = {}
            for _ in range(n_tensors):
                tname = r.string(1 << 16)
                n_dims = r.unpack("<I")
                if n_dims > 8:
                    raise ValueError("too many dimensions")
                dims = [r.unpack("<Q") for _ in range(n_dims)]
                ttype, offset = r.unpack("<I"), r.unpack("<Q")
                elements = 1
                for d in dims:
                    elements *= d
                block, nbytes = _TYPE_SIZE.get(ttype, (1, 0))
                tbytes = (elements // block) * nbytes
                ends.append(offset + tbytes)
                params += elements
                type_bytes[ttype] = type_bytes.get(ttype, 0) + tbytes
                if m := _BLOCK.match(tname):
                    n = int(m.group(1))
                    block_bytes[n] = block_bytes.get(n, 0) + tbytes
                elif len(other_bytes) < 256:
                    other_bytes[printable(tname, 80)] = tbytes
            data_start = -(-fh.tell() // alignment) * alignment
    except ModelFileError:
        raise
    except (_Unsafe, RecursionError, MemoryError, OverflowError) as exc:
        raise ModelFileError(
            f"'{name}' is damaged or unsafe ({exc or type(exc).__name__}): no model file is "
            "made like this. Do not use it; download the model again from a source you trust."
        ) from exc
    except (EOFError, ValueError, struct.error, UnicodeDecodeError) as exc:
        raise ModelFileError(
            f"'{name}' is damaged or incomplete ({exc or 'header cut short'}). Download it again."
        ) from exc
    except OSError as exc:
        raise ModelFileError(f"'{name}' cannot be read ({exc.strerror or exc}).") from exc
    needed = data_start + (max(ends) if ends else 0)
    if needed > size:
        raise ModelFileError(
            f"'{name}' is incomplete: it should be at least {needed:,} bytes but "
            f"is {size:,}. The download was probably cut short: download it again."
        )
    return GGUFInfo(
        path, version, size, n_tensors, meta, params, block_bytes, other_bytes, type_bytes
    )
