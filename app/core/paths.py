"""File names as Linux hands them over: bytes, not necessarily UTF-8.

Python decodes a name that is not valid UTF-8 with surrogateescape: each undecodable byte
becomes a lone surrogate (b"caf\\xe9.txt" -> "caf\\udce9.txt"). Such a str opens the file, but
any strict UTF-8 encoder (SQLite, a JSON file, a UTF-8 terminal) refuses it. These helpers are
the only places a path is encoded: losslessly where the path must find the file again (the
library's database), and as valid text where a person or a script reads it.
"""

from __future__ import annotations

import os
import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def display(text: str | os.PathLike[str]) -> str:
    """Valid Unicode for messages, terminals and JSON: each undecodable byte of a name shown as
    \\xNN (b"caf\\xe9.txt" -> "caf\\\\xe9.txt"). Text that is valid already comes back as it is."""
    text = os.fspath(text)
    return _SURROGATE.sub(_escape, text) if _SURROGATE.search(text) else text


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
