"""Web pages (.html/.htm): visible text only, one line per block element, and its headings.

Scripts, styles and other invisible parts are dropped, and so is navigation: menus, banners,
footers and bars of links, which would otherwise open and close every page's passages. h1-h6
become the page's headings, so chunks start at them as they do at a PDF's bookmarks. The <title>
becomes the first line, unless the first heading already says it. The page is decoded with its
byte-order mark, its <meta charset>, or the same guesses as text files.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Iterator

from app.core.documents._io import guarded, open_binary, quiet, quoted, read_head
from app.core.documents.base import EmptyDocument, Heading, Page, UnsupportedFormat
from app.core.documents.outline import section_paths
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
# blocks take quadratic time (200,000 nested <div>s: minutes). This bound keeps the worst such
# file's parsing to seconds (bench/NOTES.md).
MAX_NESTING_COST = 200_000_000
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_BLANKS = re.compile(r"\n{3,}")

_HEADINGS = {f"h{n}": n for n in range(1, 7)}
# Elements that open a section of their own: a <header> or <footer> inside one belongs to it.
_SECTIONING = frozenset({"article", "aside", "main", "nav", "section"})
_NAV_ROLES = frozenset({"navigation", "banner", "contentinfo", "search"})
# Class and id names of navigation ("navbar", "docnav", "navfooter", "breadcrumbs"), banners,
# and a page's footer; of a table of contents, dropped only where link blocks are.
_NAV_NAMES = re.compile(
    r"^nav|nav$|(?:^|[-_])(?:nav|navigation|banner|skip-?links?)(?:$|[-_])|breadcrumb"
)
_FOOTER_NAMES = re.compile(r"^(?:site|page|global)?-?footer$")
_TOC_NAMES = re.compile(r"^(?:toc|table-?of-?contents)$")
_ATTRIBUTED = _BLOCK | _SECTIONING | {"a"}
# A block is a link block when links hold this share of its letters and digits.
LINK_SHARE = 0.9
# A link's text of this many words is a sentence or a reference, not a navigation label; so is
# an address spelled out ("→ https://www.debian.org/CD/").
LONG_LINK_WORDS = 12
_ADDRESS = re.compile(r"\W*(?:[a-z][a-z+.-]*://|www\.|mailto:|[^\s@]+@[^\s@]+\.\w)", re.I)
# A list whose items were links, but for this many letters and digits left, is a link bar.
BAR_LABEL_CHARS = 40
# When dropping link blocks keeps less than this share of the page, they were its content.
KEEP_LINKS_BELOW = 0.1
# Blocks judged only with their parent: a defined term, a table cell, a heading, code.
_KEEP_ALONE = frozenset({"dt", "td", "th", "pre", "body", "html", "title", *_HEADINGS})
_LISTS = frozenset({"ul", "ol", "menu", "dl", "table", "thead", "tbody", "tfoot", "tr"})
_NON_WORD = re.compile(r"\W+")
# Private-use characters that mark where a heading starts (one per level) and ends while the
# text is laid out; stripped from the page's own text first.
_END = "\ue000"
_START = 0xE000
_MARKS = re.compile("[\ue000-\ue006]")
_EMPTY_HEADING = re.compile("[\ue001-\ue006]\\s*\ue000")
_AFTER_START = re.compile("([\ue001-\ue006])\\s+")
_BEFORE_END = re.compile("\\s+(\ue000)")

_ENTER, _LEAVE_BLOCK, _LEAVE_LINK, _LEAVE_SECTION = range(4)


def _encoding(data: bytes) -> tuple[str, int] | None:
    found = detect_encoding(data[:SAMPLE_BYTES], len(data) <= SAMPLE_BYTES)
    if found is not None and found[1]:  # a byte-order mark wins
        return found
    m = _META_CHARSET.search(data[:4096])
    if m is None:  # a page in EBCDIC declares it in EBCDIC: read the start as such
        ebcdic = _ebcdic_declaration(data[:4096])
        if ebcdic is not None:
            return ebcdic, 0
    if m:
        try:
            info = codecs.lookup(m.group(1).decode("ascii"))
            # bytes-to-bytes codecs such as "uu" or "base64" are not page encodings
            declared = info.name if getattr(info, "_is_text_encoding", True) else None
        except (LookupError, UnicodeDecodeError):
            declared = None
        if declared and not _ascii_compatible(declared):
            # The declaration was read as ASCII, so the page is not in the EBCDIC (or other
            # ASCII-incompatible) encoding it names: decoding it so would make it mojibake.
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


def _ascii_compatible(encoding: str) -> bool:
    """Whether the encoding writes ASCII text as ASCII (not EBCDIC, UTF-7 and the like)."""
    sample = '<meta charset="x">'
    try:
        return sample.encode(encoding) == sample.encode("ascii")
    except (UnicodeError, LookupError):
        return False


# EBCDIC code pages Python can decode; a page written in one of them is found by reading its
# start in the common one (cp037): the tags and the declaration are the same bytes in all.
_EBCDIC = frozenset({"cp037", "cp273", "cp424", "cp500", "cp875", "cp1026", "cp1140"})


def _ebcdic_declaration(start: bytes) -> str | None:
    """The EBCDIC code page an EBCDIC page declares in its <meta charset>, or None."""
    if b"\x4c" not in start:  # "<" in EBCDIC
        return None
    m = _META_CHARSET.search(start.decode("cp037", errors="replace").encode("ascii", "replace"))
    if m is None:
        return None
    try:
        name = codecs.lookup(m.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None
    return name if name in _EBCDIC else None


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


class _Frame:
    """A block element being read: where its text began, and the counts when it did."""

    __slots__ = ("dropped", "linked", "pos", "tag", "words")

    def __init__(self, tag: str, pos: int, words: int, linked: int) -> None:
        self.tag, self.pos, self.words, self.linked = tag, pos, words, linked
        self.dropped = 0  # child blocks dropped as links


class _Reader:
    """One walk over the tree: visible text, one line per block, with markers where headings
    start and end. `strict` also drops blocks made of links (and tables of contents)."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.out: list[str] = []
        self.words = 0  # word characters kept so far
        self.linked = 0  # of which inside links
        self.seen = 0  # word characters read, kept or not

    def read(self, root) -> str:
        out, frames = self.out, []
        stack: list[tuple[int, object]] = [(_ENTER, root)]
        in_link = in_heading = pre = sectioning = 0
        while stack:
            op, item = stack.pop()
            if op == _LEAVE_LINK:
                in_link -= 1
                pos, linked = item  # type: ignore[misc]
                shown = "".join(out[pos:])
                if _ADDRESS.match(shown) or len(shown.split()) >= LONG_LINK_WORDS:
                    self.linked = linked  # an address spelled out, a sentence: content
                continue
            if op == _LEAVE_SECTION:
                sectioning -= 1
                continue
            if op == _LEAVE_BLOCK:
                frame: _Frame = item  # type: ignore[assignment]
                frames.pop()
                tag = frame.tag
                if tag in _HEADINGS:
                    in_heading -= 1
                    out.append(_END + "\n")
                elif tag == "pre":
                    pre -= 1
                    out.append("\n\n")
                else:
                    out.append(" \t " if tag in _CELLS else "\n")
                if self.strict and self._drop(frame):
                    self.words, self.linked = frame.words, frame.linked
                    del out[frame.pos :]
                    out.append("\n")
                    if frames:
                        frames[-1].dropped += 1
                continue
            node = item
            tag = node.tag  # type: ignore[attr-defined]
            if tag == "-text":
                text = node.text_content or ""  # type: ignore[attr-defined]
                if _MARKS.search(text):
                    text = _MARKS.sub("", text)
                out.append(text if pre else text.replace("\n", " "))
                n = len(_NON_WORD.sub("", text))
                self.words += n
                self.seen += n
                if in_link and not in_heading:
                    self.linked += n
                continue
            if tag is None or tag.startswith("-") or tag in _INVISIBLE:
                continue
            if tag == "br":
                out.append("\n")
                continue
            attrs = node.attributes if tag in _ATTRIBUTED else {}  # type: ignore[attr-defined]
            if attrs and _boilerplate(tag, attrs, sectioning):
                continue
            if tag in ("header", "footer") and not sectioning:
                continue  # the page's own banner and footer, not an article's
            if tag == "a" and "href" in attrs:
                in_link += 1
                stack.append((_LEAVE_LINK, (len(out), self.linked)))
            if tag in _SECTIONING:
                sectioning += 1
                stack.append((_LEAVE_SECTION, None))
            if tag in _BLOCK or tag in _CELLS:
                frame = _Frame(tag, len(out), self.words, self.linked)
                if attrs and self.strict and _named(attrs, _TOC_NAMES):
                    frame.tag = "-toc"
                frames.append(frame)
                stack.append((_LEAVE_BLOCK, frame))
                level = _HEADINGS.get(tag)
                if level:
                    in_heading += 1
                    out.append("\n" + chr(_START + level))
                elif tag == "pre":
                    pre += 1
                    out.append("\n")
                elif tag not in _CELLS:
                    out.append("\n")
            children = []
            child = node.child  # type: ignore[attr-defined]
            while child is not None:
                children.append(child)
                child = child.next
            stack.extend((_ENTER, c) for c in reversed(children))
        return "".join(out)

    def _drop(self, frame: _Frame) -> bool:
        """Whether a block just read is navigation: a table of contents, text that is almost
        all links ("Prev | Up | Next", "Download the ebook"), or a list whose items were links
        but for a short label ("Prev · The Handbook · Next")."""
        tag = frame.tag
        if tag == "-toc":
            return True
        if tag in _KEEP_ALONE:
            return False
        words, linked = self.words - frame.words, self.linked - frame.linked
        if linked and linked >= LINK_SHARE * words:
            return True
        return tag in _LISTS and frame.dropped >= 2 and words <= BAR_LABEL_CHARS


def _named(attrs: dict, names: re.Pattern[str]) -> bool:
    for key in ("class", "id"):
        value = attrs.get(key)
        if value and any(names.search(token) for token in value.lower().split()):
            return True
    return False


def _boilerplate(tag: str, attrs: dict, sectioning: int) -> bool:
    """Navigation, a site's banner or footer, by the element's role or its class and id."""
    role = attrs.get("role")
    if role and role.strip().lower() in _NAV_ROLES:
        return True
    if _named(attrs, _NAV_NAMES):
        return True
    return not sectioning and _named(attrs, _FOOTER_NAMES)


def _clean(text: str) -> str:
    return " ".join(_MARKS.sub("", text).split())


def _layout(raw: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The text with its spacing tidied (one block per line, at most one blank line), and
    (offset, level, title) of each heading in it."""
    raw = _EMPTY_HEADING.sub("\n", raw)
    raw = _AFTER_START.sub(r"\1", _BEFORE_END.sub(r"\1", raw))
    lines = (_SPACES.sub(" ", line).strip() for line in raw.split("\n"))
    marked = _BLANKS.sub("\n\n", "\n".join(lines)).strip()
    parts: list[str] = []
    spans: list[tuple[int, int, int]] = []
    size = depth = open_at = level = last = 0
    for m in _MARKS.finditer(marked):
        piece = marked[last : m.start()]
        parts.append(piece)
        size += len(piece)
        last = m.end()
        if m.group() == _END:
            depth -= 1
            if depth == 0:
                spans.append((open_at, size, level))
        else:
            depth += 1
            if depth == 1:
                open_at, level = size, ord(m.group()) - _START
    parts.append(marked[last:])
    text = "".join(parts)
    headings = [(a, lv, " ".join(text[a:b].split())) for a, b, lv in spans]
    return text, [h for h in headings if h[2]]


def html_to_page(markup: str) -> tuple[str, tuple[Heading, ...], bool]:
    """Return (visible text, its headings, whether the page had scripts or styles).

    h1-h6 become headings, under the page's <title> when that says something the first heading
    does not. Navigation is left out: <nav>, the page's own <header> and <footer>, elements whose
    role or class says navigation, banner or footer, and blocks made of links. When leaving out
    link blocks would leave next to nothing (a page of bookmarks, an index), they are kept.
    """
    from selectolax.lexbor import LexborHTMLParser

    with quiet():
        tree = LexborHTMLParser(markup)
        had_code = tree.css_first("script, style") is not None
        title_node = tree.css_first("title")
        title = _clean(title_node.text(deep=True)) if title_node is not None else ""
        root = tree.body
        raw = ""
        if root is not None:
            reader = _Reader(strict=True)
            raw = reader.read(root)
            if reader.words < KEEP_LINKS_BELOW * reader.seen:
                raw = _Reader(strict=False).read(root)
    body, found = _layout(raw)
    if title and found and _same_title(title, found[0][2]):
        title = ""  # the page's title repeats its first heading: no line of its own
    entries = [(level, heading) for _, level, heading in found]
    offsets = [at for at, _, _ in found]
    if title:
        shift = len(title) + 1 if body else len(title)
        entries.insert(0, (0, title))
        offsets = [0] + [at + shift for at in offsets]
        text = f"{title}\n{body}" if body else title
    else:
        text = body
    paths = section_paths(entries)
    headings = tuple(Heading(at, path) for at, path in zip(offsets, paths, strict=True))
    return text, headings, had_code


def _same_title(title: str, heading: str) -> bool:
    """Whether one begins with the other, word for word ("git-commit(1)" and "git-commit(1)
    Manual Page", "Opening hours - Acme" and "Opening hours")."""
    short, long = sorted((title.casefold(), heading.casefold()), key=len)
    return long.startswith(short) and (len(long) == len(short) or not long[len(short)].isalnum())


@guarded("web page", "Open it in a browser, save or print it as PDF, and add that instead.")
def read_html(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Yield the page's visible text, and its headings, as a single Page."""
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
    text, headings, had_code = html_to_page(markup)
    if not text:
        why = " (it is mostly script)" if had_code else ""
        raise EmptyDocument(
            f"{quoted(path)} has no readable text{why}. It is probably a page that only works "
            "in a browser: open it there, save or print it as PDF, and add that instead."
        )
    yield Page(None, text, headings, embed_path=True)
