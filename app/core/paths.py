"""File names as Linux hands them over: bytes, not necessarily UTF-8.

Python decodes a name that is not valid UTF-8 with surrogateescape: each undecodable byte
becomes a lone surrogate (b"caf\\xe9.txt" -> "caf\\udce9.txt"). Such a str opens the file, but
any strict UTF-8 encoder (SQLite, a JSON file, a UTF-8 terminal) refuses it. These helpers are
the only places a path is encoded: losslessly where the path must find the file again (the
library's database), and as valid text where a person or a script reads it.

A name (or text quoted in a message) may also hold control characters: an escape sequence
would drive the terminal it is printed on (colours, a cleared screen, a fake prompt), a line
break would forge a line of output, and a bidirectional override would reorder a label. display()
shows those as visible escapes too, as safe_text.printable() does for a model's metadata.
"""

from __future__ import annotations

import os
import re

_SURROGATE = re.compile("[\ud800-\udfff]")
# Surrogates, C0 and C1 controls and DEL, the bidirectional marks, embeddings, overrides and
# isolates, and the line and paragraph separators. Joiners stay: emoji are made of them.
_UNSAFE = re.compile(
    "[\ud800-\udfff\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def display(text: str | os.PathLike[str]) -> str:
    """Valid Unicode for messages, terminals and JSON: each undecodable byte of a name shown as
    \\xNN (b"caf\\xe9.txt" -> "caf\\\\xe9.txt"), and each control character or bidirectional
    mark as \\xNN or \\uNNNN ("a\\x1b[2Jb" -> "a\\\\x1b[2Jb"). Other text comes back as it is."""
    text = os.fspath(text)
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def is_valid_text(text: str) -> bool:
    """Whether `text` encodes as UTF-8 as it is (no undecodable bytes in it)."""
    return _SURROGATE.search(text) is None


def fs_bytes(path: str | os.PathLike[str]) -> bytes:
    """The name's bytes as the file system has them."""
    path = os.fspath(path)
    try:
        return os.fsencode(path)
    except UnicodeError:  # a surrogate no file name can hold (not from surrogateescape)
        return path.encode("utf-8", "surrogatepass")


def to_sql(path: str) -> str | bytes:
    """How a path is stored and looked up in SQLite: as text when it is valid UTF-8 (every
    library made before stored its paths so), else as the name's bytes (a BLOB)."""
    return path if is_valid_text(path) else fs_bytes(path)


def from_sql(value: str | bytes) -> str:
    """The path to_sql() stored, as a str that opens the file."""
    return os.fsdecode(value) if isinstance(value, bytes) else value
