"""Word documents (.docx): paragraphs and table cells in reading order, read as a stream.

A .docx is a ZIP of XML parts; which part holds the text is named by the package's
relationships (`_rels/.rels`), not by its file name, so a `word/document.xml` may be a decoy.
Only three parts are ever unpacked: the relationships, the main document part they name, and its
styles; pictures and other media are never decompressed. Each part's unpacked size is checked in
the ZIP's directory before it is opened (zipfile never unpacks more than the size recorded
there), and the main part is parsed as a stream of XML events (lxml's target parser, no tree),
so memory holds the text read so far, not the XML: a file that unpacks to gigabytes fails at
once with a message instead of filling memory.

The text is what Word shows: runs of paragraphs (in hyperlinks, tracked insertions, content
controls, fields), tables row by row (cells joined by ' | '); hidden text (`w:vanish`, directly
or through a style), deleted text, field codes and text in drawings are left out.

Word has no fixed pages, so the text is one Page with number None; a document with more than
PART_CHARS of text comes as several such Pages, cut between paragraphs, so the chunker never
holds all of a very long document at once. Paragraphs in Word's heading styles (Title,
Heading 1-9) become headings, so chunks start at them as they do at a PDF's bookmarks.
"""

from __future__ import annotations

import os
import posixpath
import zipfile
from collections.abc import Iterator

from app.core.documents._io import corrupt, guarded, open_binary, quoted
from app.core.documents.base import CorruptDocument, EmptyDocument, Heading, Page
from app.core.documents.outline import MAX_TITLE_CHARS

_WHAT = "Word document"
_FIX = "Open it in Word, save it again as .docx, and add it again."
_MB = 1024 * 1024
# The unpacked main part. Long reports and books are a few tens of MB of XML; more is a file
# built to expand (a ZIP bomb), which must fail before it is unpacked.
MAX_XML_BYTES = 128 * _MB
MAX_TEXT_CHARS = 64_000_000  # the text read out of it; beyond, it fails instead of growing
# Text compresses 3-5x (XML around it a little more): past its first TEXT_FLOOR characters, a
# document whose text is this many times the size of its packed main part was built to expand,
# and would keep the embedder busy for hours; it fails instead (the ingester reads 16 parts
# before it chunks any, so before any of it is embedded).
MAX_TEXT_RATIO = 100
TEXT_FLOOR = 1_000_000
MAX_STYLES_BYTES = 16 * _MB  # styles.xml; a larger one is ignored (headings and hidden styles)
MAX_SMALL_PART_BYTES = 4 * _MB  # [Content_Types].xml and the relationship parts
PART_CHARS = 1_000_000  # a document with more text comes as several Pages of about this size
_BLOCK = 256 * 1024  # bytes fed to the XML parser at a time

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
_OFFICE_DOCUMENT = "/officeDocument"  # relationship types end so (transitional and strict)
_STYLES = "/styles"
_MAIN_TYPES = frozenset(
    f"application/vnd.{kind}.main+xml"
    for kind in (
        "openxmlformats-officedocument.wordprocessingml.document",
        "openxmlformats-officedocument.wordprocessingml.template",
        "ms-word.document.macroEnabled",
        "ms-word.template.macroEnabledTemplate",
    )
)

_DOCUMENT = f"{_W}document"
_P, _R, _TBL, _TR, _TC = (f"{_W}{t}" for t in ("p", "r", "tbl", "tr", "tc"))
_PPR, _RPR, _PSTYLE, _RSTYLE = (f"{_W}{t}" for t in ("pPr", "rPr", "pStyle", "rStyle"))
_VANISH = frozenset({f"{_W}vanish", f"{_W}specVanish"})
_TEXT = f"{_W}t"
# Run content that stands for a character (python-docx's Run.text does the same).
_CHARS = {f"{_W}tab": "\t", f"{_W}ptab": "\t", f"{_W}cr": "\n", f"{_W}noBreakHyphen": "-"}
_BR = f"{_W}br"
# Subtrees whose text is not part of what the document shows: deleted and moved-away text,
# the fallback copy of alternate content, a paragraph's or run's properties (their own rPr).
_SKIP = frozenset({f"{_W}del", f"{_W}moveFrom", f"{_MC}Fallback", f"{_W}pPr", f"{_W}tblPr"})
_OFF = frozenset({"0", "false", "off"})


def _too_large(path, what: str, limit: int) -> CorruptDocument:
    return CorruptDocument(
        f"{quoted(path)} could not be read: its {what} expands to more than {limit // _MB} MB "
        "when unpacked, far more than any letter or report (it may be built to fill memory). "
        "If it is a real document, split it into smaller files or save it as PDF, and add those."
    )


def _not_word(path) -> CorruptDocument:
    return corrupt(path, _WHAT, _FIX)


def _part_name(base: str, target: str) -> str:
    """The ZIP member a relationship's target names, relative to the part at `base`."""
    name = posixpath.join("/", posixpath.dirname(base), target)  # "/x" stays absolute
    return posixpath.normpath(name).lstrip("/")


def _rels_of(part: str) -> str:
    head, tail = posixpath.split(part)
    return posixpath.join(head, "_rels", f"{tail}.rels")


class _Package:
    """The ZIP's directory and the few small parts read whole."""

    def __init__(self, zf: zipfile.ZipFile, path) -> None:
        self.zf, self.path = zf, path
        self.infos = {info.filename: info for info in zf.infolist()}

    def info(self, name: str) -> zipfile.ZipInfo | None:
        return self.infos.get(name)

    def small_xml(self, name: str):
        """A small part parsed whole, or None where it is missing."""
        from lxml import etree

        info = self.info(name)
        if info is None:
            return None
        if info.file_size > MAX_SMALL_PART_BYTES:
            raise _too_large(self.path, f"part '{name}'", MAX_SMALL_PART_BYTES)
        with self.zf.open(info) as part:
            data = part.read(MAX_SMALL_PART_BYTES + 1)
        return etree.fromstring(data, _parser())

    def relationships(self, source: str) -> list[tuple[str, str]]:
        """(type, member name) of a part's internal relationships ("" for the package's)."""
        root = self.small_xml(_rels_of(source) if source else "_rels/.rels")
        if root is None:
            return []
        found = []
        for rel in root.iter(f"{_RELS}Relationship"):
            target = rel.get("Target")
            if target and rel.get("TargetMode", "Internal") != "External":
                found.append((rel.get("Type") or "", _part_name(source, target)))
        return found

    def content_type(self, name: str) -> str | None:
        root = self.small_xml("[Content_Types].xml")
        if root is None:
            return None
        for override in root.iter(f"{_CT}Override"):
            if (override.get("PartName") or "").lstrip("/").lower() == name.lower():
                return override.get("ContentType")
        extension = posixpath.splitext(name)[1].lstrip(".").lower()
        for default in root.iter(f"{_CT}Default"):
            if (default.get("Extension") or "").lower() == extension:
                return default.get("ContentType")
        return None


def _parser(target=None):
    from lxml import etree

    # No DTDs, no entity expansion, no network, and libxml2's own limits on depth and text size.
    return etree.XMLParser(
        target=target,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _feed(package: _Package, info: zipfile.ZipInfo, target, limit: int):
    """Parse a part as a stream, never unpacking more than `limit` bytes."""
    parser = _parser(target)
    read = 0
    with package.zf.open(info) as part:
        while block := part.read(_BLOCK):
            read += len(block)
            if read > limit:  # zipfile stops at the directory's size; this is a second check
                raise _too_large(package.path, "styles part", limit)
            parser.feed(block)
    return parser.close()


# ------------------------------------------------------------------ styles
class _StyleTarget:
    """styles.xml -> {style id: (type, lowercase name, based on, vanish or None)} and the
    document defaults' vanish."""

    def __init__(self) -> None:
        self.styles: dict[str, tuple[str, str, str | None, bool | None]] = {}
        self.default_hidden = False
        self._stack: list[str] = []
        self._style: list | None = None

    def start(self, tag, attrib) -> None:
        parent = self._stack[-1] if self._stack else ""
        self._stack.append(tag)
        if tag == f"{_W}style" and parent == f"{_W}styles":
            self._style = [attrib.get(f"{_W}styleId") or "", attrib.get(f"{_W}type") or ""]
            self._style += ["", None, None]
        elif self._style is not None and parent == f"{_W}style":
            if tag == f"{_W}name":
                self._style[2] = (attrib.get(f"{_W}val") or "").strip().lower()
            elif tag == f"{_W}basedOn":
                self._style[3] = attrib.get(f"{_W}val")
        elif tag in _VANISH and parent == _RPR:
            hidden = (attrib.get(f"{_W}val") or "true").lower() not in _OFF
            if self._style is not None and len(self._stack) == 4:  # styles/style/rPr/vanish
                self._style[4] = hidden
            elif f"{_W}docDefaults" in self._stack and self._style is None:
                self.default_hidden = hidden

    def end(self, tag) -> None:
        self._stack.pop()
        if tag == f"{_W}style" and self._style is not None:
            sid, kind, name, based, hidden = self._style
            self.styles.setdefault(sid, (kind, name, based, hidden))
            self._style = None

    def data(self, data) -> None:
        pass

    def close(self):
        return self


class _Styles:
    def __init__(self, target: _StyleTarget | None = None) -> None:
        self._styles = target.styles if target else {}
        self.default_hidden = target.default_hidden if target else False

    def level(self, style_id: str | None) -> int | None:
        """0 for Title, N for Heading N (Word's built-in names, whatever the UI language), else
        None; a paragraph style the file names but lacks is the normal style."""
        found = self._styles.get(style_id or "")
        if found is None or found[0] != "paragraph":
            return None
        name = found[1]
        if name == "title":
            return 0
        if name.startswith("heading ") and name[8:].isdigit():
            return int(name[8:])
        return None

    def hidden(self, style_id: str | None, kind: str) -> bool | None:
        """Whether a style (or the one it is based on, and so on) hides its text."""
        seen = set()
        while style_id and style_id not in seen:
            seen.add(style_id)
            found = self._styles.get(style_id)
            if found is None or found[0] != kind:
                return None
            if found[3] is not None:
                return found[3]
            style_id = found[2]
        return None


def _read_styles(package: _Package, main: str) -> _Styles:
    for kind, name in package.relationships(main):
        if kind.endswith(_STYLES):
            info = package.info(name)
            if info is None or info.file_size > MAX_STYLES_BYTES:
                break
            try:
                return _Styles(_feed(package, info, _StyleTarget(), MAX_STYLES_BYTES))
            except CorruptDocument:
                raise
            except Exception:  # damaged styles cost the headings, not the text
                break
    return _Styles()


# ------------------------------------------------------------------ the main part
class _Cell:
    def __init__(self) -> None:
        self.parts: list[str] = []


class _Table:
    def __init__(self) -> None:
        self.row: list[str] | None = None


class _BodyTarget:
    """Events of the main part -> blocks of (text, heading level or None), in reading order,
    collected in `blocks` as each paragraph or table row ends (the caller empties it). Nothing
    of the XML is kept: only the stack of open tags and the text of the open paragraph."""

    def __init__(self, styles: _Styles, path, packed: int) -> None:
        self.styles, self.path = styles, path
        # the most text it may hold: whichever of the two limits is lower
        self.max_chars = min(MAX_TEXT_CHARS, max(TEXT_FLOOR, MAX_TEXT_RATIO * packed))
        self.blocks: list[tuple[str, int | None]] = []
        self.chars = 0  # text read so far
        self._stack: list[str] = []
        self._skip = 0  # depth inside a subtree left out (0: not in one)
        self._containers: list[_Cell | _Table] = []
        self._para: list[str] | None = None  # the open paragraph's text
        self._pstyle: str | None = None
        self._run = False  # inside a run
        self._rvanish: bool | None = None  # the run's own vanish (None: not set)
        self._rstyle: str | None = None
        self._rhidden: bool | None = None  # decided at the run's first text
        self._in_text = False

    def start(self, tag, attrib) -> None:
        stack = self._stack
        if not stack and tag != _DOCUMENT:  # python-docx, and Word, want nothing else
            raise _not_word(self.path)
        parent = stack[-1] if stack else ""
        stack.append(tag)
        if self._skip:
            self._skip += 1
            # a paragraph's style is the one thing read inside its (skipped) properties
            if tag == _PSTYLE and self._skip == 2 and parent == _PPR and stack[-3] == _P:
                self._pstyle = attrib.get(f"{_W}val")
            return
        if self._run:
            self._run_child(tag, parent, attrib)
        elif tag in _SKIP:
            self._skip = 1
        elif tag == _P:
            self._para, self._pstyle = [], None
        elif tag == _R:
            if self._para is not None:
                self._run, self._rvanish, self._rstyle, self._rhidden = True, None, None, None
        elif tag == _TBL:
            self._containers.append(_Table())
        elif self._containers and isinstance(self._containers[-1], _Table):
            if tag == _TR:
                self._containers[-1].row = []
            elif tag == _TC:
                self._containers.append(_Cell())

    def _run_child(self, tag, parent, attrib) -> None:
        if parent == _R:
            if tag == _RPR:
                return
            if tag == _TEXT:
                self._in_text = True
                return
            if tag in _CHARS:
                self._append(_CHARS[tag])
                return
            if tag == _BR:
                if (attrib.get(f"{_W}type") or "textWrapping") == "textWrapping":
                    self._append("\n")
                return
        elif parent == _RPR:
            if tag in _VANISH:
                self._rvanish = (attrib.get(f"{_W}val") or "true").lower() not in _OFF
            elif tag == _RSTYLE:
                self._rstyle = attrib.get(f"{_W}val")
            return
        # drawings, text boxes, embedded objects, field codes: not the run's own text
        self._skip = 1

    def end(self, tag) -> None:
        self._stack.pop()
        if self._skip:
            self._skip -= 1
            return
        containers = self._containers
        if self._run:
            if tag == _TEXT:
                self._in_text = False
            elif tag == _R:
                self._run = False
        elif tag == _P:
            if self._para is not None:
                text, self._para = "".join(self._para), None
                in_table = any(isinstance(c, _Cell) for c in containers)
                self._emit(text, None if in_table else self.styles.level(self._pstyle))
        elif not containers:
            return
        elif tag == _TC and isinstance(containers[-1], _Cell):
            cell = containers.pop()
            text = " ".join(t for t in cell.parts if t.strip())
            row = containers[-1].row if containers and isinstance(containers[-1], _Table) else None
            if text and row is not None:
                row.append(text)
        elif tag == _TR and isinstance(containers[-1], _Table):
            table = containers.pop()  # while its row goes to the cell around it, if any
            if table.row:
                self._emit(" | ".join(table.row), None)
            table.row = None
            containers.append(table)
        elif tag == _TBL and isinstance(containers[-1], _Table):
            containers.pop()

    def data(self, data) -> None:
        if self._in_text and not self._skip:
            self._append(data)

    def close(self):
        return self

    def _append(self, text: str) -> None:
        if self._para is None:
            return
        if self._rhidden is None:
            self._rhidden = self._hidden()
        if self._rhidden:
            return
        self._para.append(text)
        self.chars += len(text)
        if self.chars > self.max_chars:
            raise CorruptDocument(
                f"{quoted(self.path)} could not be read: it expands to more than "
                f"{self.max_chars:,} characters of text, far more than its "
                "size on disk holds (it may be built to fill memory and time). If it is a real "
                "document, split it into smaller files or save it as PDF, and add those."
            )

    def _hidden(self) -> bool:
        if self._rvanish is not None:  # direct formatting decides
            return self._rvanish
        by_char = self.styles.hidden(self._rstyle, "character")
        by_para = self.styles.hidden(self._pstyle, "paragraph")
        if by_char is None and by_para is None:
            return self.styles.default_hidden
        return bool(by_char) != bool(by_para)  # vanish is a toggle: two styles cancel out

    def _emit(self, text: str, level: int | None) -> None:
        """A paragraph or a table's row: into the cell around it, else out as a block."""
        if self._containers and isinstance(self._containers[-1], _Cell):
            self._containers[-1].parts.append(text)
        else:
            self.blocks.append((text, level))


# ------------------------------------------------------------------ pages
class _Pages:
    """Blocks -> Pages of about PART_CHARS, with each heading's place and section path."""

    def __init__(self) -> None:
        self.sections: list[tuple[int, str]] = []
        self.lines: list[str] = []
        self.size = 0
        self.headings: list[Heading] = []

    def add(self, text: str, level: int | None) -> Page | None:
        if not text.strip():
            return None
        done = None
        if self.lines and self.size + len(text) > PART_CHARS:
            done = self.flush()
        at = self.size
        if level is not None:
            while self.sections and self.sections[-1][0] >= level:
                self.sections.pop()
            self.sections.append((level, " ".join(text.split())[:MAX_TITLE_CHARS]))
            self.headings.append(Heading(at, tuple(t for _, t in self.sections if t)))
        self.lines.append(text)
        self.size += len(text) + 1
        return done

    def flush(self) -> Page | None:
        page = None
        if self.lines:
            page = Page(None, "\n".join(self.lines), tuple(self.headings))
        self.lines, self.size, self.headings = [], 0, []
        return page


def _main_part(package: _Package, path) -> zipfile.ZipInfo:
    """The main document part, found as Word finds it: through the package's relationships."""
    name = next(
        (n for kind, n in package.relationships("") if kind.endswith(_OFFICE_DOCUMENT)), None
    )
    info = package.info(name) if name else None
    if info is None or package.content_type(name) not in _MAIN_TYPES:
        raise _not_word(path)
    if info.file_size > MAX_XML_BYTES:
        raise _too_large(path, "document part", MAX_XML_BYTES)
    return info


def _blocks(package: _Package, main: zipfile.ZipInfo, path) -> Iterator[list]:
    """The main part's blocks, a list at a time as the XML is fed in."""
    target = _BodyTarget(_read_styles(package, main.filename), path, main.compress_size)
    parser = _parser(target)
    read = 0
    with package.zf.open(main) as part:
        while block := part.read(_BLOCK):
            read += len(block)
            if read > MAX_XML_BYTES:  # zipfile stops at the directory's size; a second check
                raise _too_large(path, "document part", MAX_XML_BYTES)
            parser.feed(block)
            yield target.blocks
            target.blocks = []
    parser.close()
    yield target.blocks


@guarded(_WHAT, _FIX)
def read_docx(path: str | os.PathLike[str]) -> Iterator[Page]:
    """Yield the document's text: one Page(None, text), or several for a very long one."""
    f, _size = open_binary(path)
    yielded = False
    with f:
        try:
            with zipfile.ZipFile(f) as zf:
                package = _Package(zf, path)
                main = _main_part(package, path)
                pages = _Pages()
                for blocks in _blocks(package, main, path):
                    for text, level in blocks:
                        page = pages.add(text, level)
                        if page is not None:
                            yielded = True
                            yield page
                page = pages.flush()
                if page is not None:
                    yielded = True
                    yield page
        except (zipfile.BadZipFile, KeyError) as exc:
            raise _not_word(path) from exc
    if not yielded:
        raise EmptyDocument(
            f"{quoted(path)} has no text in it, so there is nothing to read. "
            "If it holds only pictures or scans, save it as PDF and run OCR on it first."
        )
