"""Plain text: encoding detection and a streaming, memory-bounded reader.

Markdown files are decoded the same way, then read without their markup (markdown.py).

The encoding is decided from the first 64 KB: a byte-order mark, else strict UTF-8, else the
best single-byte guess (Windows-1252 preferred when plausible, then charset-normalizer), else
Latin-1, which never fails. The file is then decoded incrementally in blocks and handed out as
pieces of about 64 KB, cut at a line break or a space so no word is split.

Text holds no long run of zero bytes (even UTF-16 and UTF-32 have at most three in a row), but
a disk image or a sparse file can start with text and go on with gigabytes of them. So besides
the first 64 KB, the middle and the end of a file are sampled before it is accepted, and every
block read afterwards is checked too: reading stops at the first such run, with a message.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator

from app.core.documents._io import guarded, open_binary, quiet, quoted, read_head
from app.core.documents.base import EmptyDocument, Page, UnsupportedFormat

SAMPLE_BYTES = 64 * 1024
PIECE_CHARS = 64 * 1024
BLOCK_BYTES = 64 * 1024
NUL_RUN = b"\x00" * 64  # zero bytes in a row that no text file holds
PROBE_BYTES = 4096  # read at the middle and at the end of a file larger than the sample

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_OK_CONTROLS = frozenset("\t\n\r\f\v\x1b")
# Characters Windows-1252 text from Western Europe is made of, besides ASCII.
_WESTERN_EXTRA = frozenset("€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ\xa0¡¢£¥§¨©ª«¬\xad®¯°±²´µ·¸º»¼½¾¿")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{3,}")


def _decode_sample(sample: bytes, encoding: str, final: bool, errors: str = "strict") -> str:
    return codecs.getincrementaldecoder(encoding)(errors=errors).decode(sample, final=final)


def _utf16_without_bom(sample: bytes) -> str | None:
    n = len(sample) // 2 * 2
    if n < 4:
        return None
    even, odd = sample[0:n:2], sample[1:n:2]
    half = n // 2
    if odd.count(0) >= 0.4 * half and even.count(0) <= 0.05 * half:
        return "utf-16-le"
    if even.count(0) >= 0.4 * half and odd.count(0) <= 0.05 * half:
        return "utf-16-be"
    return None


def _looks_western(text: str) -> bool:
    """Whether Windows-1252 decoding gave ordinary Western European text, not mojibake."""
    for ch in text:
        if ord(ch) < 0x80 or ch in _WESTERN_EXTRA:
            continue
        if not ("\xc0" <= ch <= "\xff") or ch in "×÷":
            return False
    # Accented letters sit inside ASCII words; long runs of them are another script misread.
    return sum(len(m.group()) for m in _NON_ASCII_RUN.finditer(text)) <= 0.2 * max(
        1, sum(1 for ch in text if ord(ch) >= 0x80)
    )


def _single_byte(sample: bytes, final: bool) -> str:
    try:
        as1252 = _decode_sample(sample, "cp1252", final)
    except UnicodeDecodeError:
        as1252 = None
    guess = None
    try:
        from charset_normalizer import from_bytes

        with quiet():
            results = from_bytes(sample)
            best = results.best()
        if best is not None:
            lowest = min(m.chaos for m in results)
            tied = {m.encoding for m in results if m.chaos <= lowest + 0.01}
            candidates = {best.encoding, *best.could_be_from_charset, *tied}
            if as1252 is not None and "cp1252" in candidates:
                return "cp1252"
            guess = best.encoding
    except Exception:  # a guesser failure only means we fall back
        guess = None
    if as1252 is not None and _looks_western(as1252):
        return "cp1252"
    if guess:
        try:
            codecs.lookup(guess)
            _decode_sample(sample, guess, final)
            return guess
        except (LookupError, UnicodeDecodeError):
            pass
    return "latin-1"


def _looks_binary(text: str) -> bool:
    if not text:
        return False
    bad = 0
    for ch in text:
        o = ord(ch)
        if (o < 32 and ch not in _OK_CONTROLS) or 0x7F <= o < 0xA0 or o == 0xFFFD:
            bad += 1
    return bad > 0.05 * len(text) or (bad > 0 and "\x00" in text)


def detect_encoding(sample: bytes, complete: bool) -> tuple[str, int] | None:
    """Return (codec, BOM length) for the start of a file, or None when it is not text.

    `complete` says the sample is the whole file (so a cut-off character at its end is an error).
    """
    encoding, skip = None, 0
    for bom, enc in _BOMS:
        if sample.startswith(bom):
            encoding, skip = enc, len(bom)
            break
    if encoding is None:
        if b"\x00" in sample:
            encoding = _utf16_without_bom(sample)
            if encoding is None:
                return None
        else:
            try:
                _decode_sample(sample, "utf-8", complete)
                encoding = "utf-8"
            except UnicodeDecodeError:
                encoding = _single_byte(sample, complete)
    text = _decode_sample(sample[skip:], encoding, complete, errors="replace")
    if _looks_binary(text):
        return None
    return encoding, skip


def decode_bytes(data: bytes) -> str:
    """Decode a whole (small) byte string with the same rules; binary data is decoded as UTF-8."""
    found = detect_encoding(data[:SAMPLE_BYTES], len(data) <= SAMPLE_BYTES)
    encoding, skip = found if found else ("utf-8", 0)
    return data[skip:].decode(encoding, errors="replace")


def binary_error(path: str | os.PathLike[str]) -> UnsupportedFormat:
    return UnsupportedFormat(
        f"{quoted(path)} looks like binary data, not text, so it cannot be read. "
        "Only PDF, Word (.docx), web pages and plain text files can be added."
    )


def nul_run_error(path: str | os.PathLike[str], offset: int) -> UnsupportedFormat:
    return UnsupportedFormat(
        f"{quoted(path)} starts as text but holds binary data further on (a long run of zero "
        f"bytes at about {offset / 1e6:.1f} MB), so it is not a text file and was not read. "
        "If it should be text, it is damaged: save it again from the program that made it."
    )


def nul_run_beyond(f, path: str | os.PathLike[str], size: int, start: int) -> int | None:
    """Where a long run of zero bytes lies in the middle or at the end of a file whose first
    `start` bytes were looked at already; None when neither holds one. Leaves `f` at `start`."""
    try:
        for at in (size // 2, size - PROBE_BYTES):
            if at < start:
                continue
            f.seek(at)
            probe = read_head(f, path, PROBE_BYTES)
            found = probe.find(NUL_RUN)
            if found != -1:
                return at + found
        return None
    finally:
        f.seek(start)


class _NulWatch:
    """Finds a run of zero bytes in a stream of blocks, a run cut across two blocks included."""

    def __init__(self, start: int, tail: bytes = b"") -> None:
        self.offset = start
        self.tail = tail[-(len(NUL_RUN) - 1) :]

    def check(self, block: bytes) -> int | None:
        joined = self.tail + block
        found = joined.find(NUL_RUN)
        at = None if found == -1 else self.offset - len(self.tail) + found
        self.offset += len(block)
        self.tail = joined[-(len(NUL_RUN) - 1) :]
        return at


def _cut(buf: str, target: int) -> int:
    """Where to end a piece: after the last line break, else space, in its second half."""
    i = buf.rfind("\n", target // 2, target)
    if i == -1:
        i = max(buf.rfind(" ", target // 2, target), buf.rfind("\t", target // 2, target))
    return i + 1 if i != -1 else target


def open_text(path: str | os.PathLike[str]):
    """Open a text file and sniff its encoding: (open binary file, encoding, the bytes of the
    sample read so far, byte-order mark left out). Raises the binary-file error for a file
    that is not text. Shared by the text and Markdown readers."""
    f, size = open_binary(path)
    try:
        sample = read_head(f, path, SAMPLE_BYTES)
        found = detect_encoding(sample, len(sample) >= size or len(sample) < SAMPLE_BYTES)
        if found is None:
            raise binary_error(path)
        at = nul_run_beyond(f, path, size, len(sample))
        if at is not None:
            raise nul_run_error(path, at)
    except BaseException:
        f.close()
        raise
    encoding, skip = found
    return f, encoding, sample[skip:]


@guarded("text file", "Open it in a text editor, save it again as UTF-8 text, and add it again.")
def read_text(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Yield the file's text in pieces of about 64 KB, as Page(None, text)."""
    f, encoding, head = open_text(path)
    with f:
        watch = _NulWatch(f.tell(), head)
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        buf = decoder.decode(head)
        del head  # the sample is in the decoder now; do not keep a second copy
        yielded = False
        done = False
        while not done:
            block = read_head(f, path, BLOCK_BYTES)
            at = watch.check(block)
            if at is not None:
                raise nul_run_error(path, at)
            done = not block
            buf += decoder.decode(block, final=done)
            while len(buf) >= PIECE_CHARS:
                cut = _cut(buf, PIECE_CHARS)
                piece, buf = buf[:cut], buf[cut:]
                if not piece.isspace():
                    yielded = True
                    yield Page(None, piece)
        if buf and not buf.isspace():
            yielded = True
            yield Page(None, buf)
        if not yielded:
            raise EmptyDocument(
                f"{quoted(path)} contains only blank space, so there is nothing to read. "
                "Check that it was saved correctly."
            )
