"""Web pages (.html/.htm): visible text only, one line per block element.

Scripts, styles and other invisible parts are dropped; the <title> becomes the first line. The
page is decoded with its byte-order mark, its <meta charset>, or the same guesses as text files.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator

from app.core.documents._io import guarded, open_binary, quiet, quoted, read_head
from app.core.documents.base import EmptyDocument, Page, UnsupportedFormat
from app.core.documents.text import SAMPLE_BYTES, binary_error, detect_encoding

MAX_HTML_BYTES = 50 * 1024 * 1024

_INVISIBLE = frozenset(
    {
        "head",
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "iframe",
        "object",
        "embed",
        "canvas",
        "audio",
        "video",
        "map",
        "select",
        "datalist",
    }
)
_BLOCK = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "frameset",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "html",
        "legend",
        "li",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
        "option",
        "textarea",
        "title",
    }
)
_CELLS = frozenset({"td", "th"})
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.I
)
_OPTIONAL_END = frozenset(
    {
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "optgroup",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "caption",
        "rb",
        "rt",
        "rp",
        "html",
        "head",
        "body",
    }
)
_VOID = frozenset(
    {
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "basefont",
        "frame",
        "keygen",
        "isindex",
    }
)
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]{0,15})")
# The parser scans its stack of open elements for every block it opens, so deeply nested
# blocks take quadratic time (200,000 nested <div>s: minutes). About 1.5 s of parsing at most.
MAX_NESTING_COST = 200_000_000
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_BLANKS = re.compile(r"\n{3,}")


def _encoding(data: bytes) -> tuple[str, int] | None:
    found = detect_encoding(data[:SAMPLE_BYTES], len(data) <= SAMPLE_BYTES)
    if found is not None and found[1]:  # a byte-order mark wins
        return found
    m = _META_CHARSET.search(data[:4096])
    if m:
        try:
            info = codecs.lookup(m.group(1).decode("ascii"))
            # bytes-to-bytes codecs such as "uu" or "base64" are not page encodings
            declared = info.name if getattr(info, "_is_text_encoding", True) else None
        except (LookupError, UnicodeDecodeError):
            declared = None
        if declared in ("latin-1", "iso8859-1", "ascii"):
            declared = "cp1252"  # what browsers do, too
        if declared and not declared.startswith(("utf-16", "utf-32")):
            try:
                data[:SAMPLE_BYTES].decode(declared)
                return declared, 0
            except (UnicodeDecodeError, LookupError):
                pass
    return found


def nesting_cost(markup: str) -> int:
    """Estimate the parser's work on nested blocks: the depth summed over every block opened."""
    if len(markup) < 100_000:
        return 0  # too few tags to matter
    depth = cost = 0
    for m in _TAG.finditer(markup):
        name = m.group(2).lower()
        if name in _VOID:
            continue
        if m.group(1):
            if name not in _OPTIONAL_END and depth:
                depth -= 1
            continue
        if name in _BLOCK or name in _OPTIONAL_END:
            cost += depth
        if name not in _OPTIONAL_END:
            depth += 1
    return cost


def html_to_text(markup: str) -> tuple[str, bool]:
    """Return (visible text, whether the page had scripts or styles)."""
    from selectolax.lexbor import LexborHTMLParser

    with quiet():
        tree = LexborHTMLParser(markup)
        had_code = tree.css_first("script, style") is not None
        title_node = tree.css_first("title")
        title = title_node.text(deep=True) if title_node is not None else ""
        out: list[str] = [_SPACES.sub(" ", title).strip(), "\n"]
        root = tree.body
        stack: list[tuple[object, int]] = [(root, 0)] if root is not None else []
        pre = 0
        # 0: enter a node; 1: leave a block; 2: leave a <pre>; 3: leave a table cell
        while stack:
            node, step = stack.pop()
            if step:
                if step == 2:
                    pre -= 1
                out.append(" \t " if step == 3 else "\n")
                if step == 2:
                    out.append("\n")
                continue
            tag = node.tag  # type: ignore[attr-defined]
            if tag == "-text":
                text = node.text_content or ""  # type: ignore[attr-defined]
                out.append(text if pre else text.replace("\n", " "))
                continue
            if tag is None or tag.startswith("-") or tag in _INVISIBLE:
                continue
            if tag == "br":
                out.append("\n")
                continue
            if tag == "pre":
                pre += 1
                out.append("\n")
                stack.append((node, 2))
            elif tag in _CELLS:
                stack.append((node, 3))
            elif tag in _BLOCK:
                out.append("\n")
                stack.append((node, 1))
            children = []
            child = node.child  # type: ignore[attr-defined]
            while child is not None:
                children.append(child)
                child = child.next
            stack.extend((c, 0) for c in reversed(children))
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(out).split("\n"))
    text = _BLANKS.sub("\n\n", "\n".join(lines)).strip()
    return text, had_code


@guarded("web page", "Open it in a browser, save or print it as PDF, and add that instead.")
def read_html(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Yield the page's visible text as a single Page(None, text)."""
    f, size = open_binary(path)
    with f:
        if size > MAX_HTML_BYTES:
            raise UnsupportedFormat(
                f"{quoted(path)} is too large to read as a web page ({size // (1024 * 1024)} MB; "
                f"the limit is {MAX_HTML_BYTES // (1024 * 1024)} MB). Save it as plain text or "
                "PDF and add that instead."
            )
        data = read_head(f, path, MAX_HTML_BYTES + 1)
    found = _encoding(data)
    if found is None:
        raise binary_error(path)
    encoding, skip = found
    markup = data[skip:].decode(encoding, errors="replace").replace("\x00", "\ufffd")
    del data
    if nesting_cost(markup) > MAX_NESTING_COST:
        raise UnsupportedFormat(
            f"{quoted(path)} is built in a way that is too complex to read (its parts are nested "
            "far too deeply). Open it in a browser, save or print it as PDF, and add that instead."
        )
    text, had_code = html_to_text(markup)
    if not text:
        why = " (it is mostly script)" if had_code else ""
        raise EmptyDocument(
            f"{quoted(path)} has no readable text{why}. It is probably a page that only works "
            "in a browser: open it there, save or print it as PDF, and add that instead."
        )
    yield Page(None, text)
