"""Text from a file shown in our own words: control characters made visible, length bounded.

A model file's name, its metadata and its chat template's messages are written by whoever made
the file. Printed raw, an escape sequence would drive the terminal (colours, a cleared screen, a
fake prompt) and a bidirectional override would reorder a label; here they become visible
escapes (\\x1b, \\u202e) and cannot act.
"""

from __future__ import annotations

import unicodedata

# Categories shown escaped: controls (C0, DEL, C1), format characters (bidi overrides and
# isolates, zero-width joiners), line and paragraph separators, surrogates, private use and
# unassigned code points.
_ESCAPED = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def printable(text: object, limit: int = 200) -> str:
    """`text` on one line, each character that could act on a terminal or a label escaped,
    cut to about `limit` characters (an ellipsis says so)."""
    s = str(text)
    cut = len(s) > limit
    out = []
    for ch in s[:limit]:
        if unicodedata.category(ch) in _ESCAPED:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out) + ("…" if cut else "")


def snippet(text: object, limit: int = 110) -> str:
    """A passage quoted on one line (a source's button, the viewer's note, the CLI): runs of
    whitespace as one space, cut at a word before `limit` with an ellipsis, and each character
    that could act on a terminal or a label escaped as printable() does (a document's bidi
    override must not reorder the window's words)."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 1].rsplit(" ", 1)[0] + "…"
    return printable(flat, limit=len(flat))
