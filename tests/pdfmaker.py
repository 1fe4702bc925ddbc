"""Tiny generators of real test documents: text PDFs written by hand, and .docx via python-docx."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _pdf_string(line: str) -> bytes:
    raw = line.encode("cp1252", errors="replace")  # Helvetica with WinAnsiEncoding
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def pdf_bytes(pages: Sequence[str], outline: Sequence[tuple[int, str, int]] = ()) -> bytes:
    """A valid PDF with one page per string (lines split on newlines).

    An empty string makes a page with only a drawn rectangle: no text layer. `outline` gives
    bookmarks as (level from 0, title, 0-based page index), in order, like a table of contents.
    """
    n = len(pages)
    objects: list[bytes] = []
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    first_outline = 4 + 2 * n
    if outline:
        objects.append(f"<< /Type /Catalog /Pages 2 0 R /Outlines {first_outline} 0 R >>".encode())
    else:
        objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for i, text in enumerate(pages):
        if text:
            ops = [b"BT", b"/F1 12 Tf", b"14 TL", b"72 720 Td"]
            for j, line in enumerate(text.split("\n")):
                ops.append((b"T* " if j else b"") + _pdf_string(line) + b" Tj")
            ops.append(b"ET")
        else:
            ops = [b"0.5 g", b"72 72 200 100 re", b"f"]
        stream = b"\n".join(ops)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream")
    if outline:
        objects.extend(_outline_objects(outline, first_outline))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _outline_objects(entries: Sequence[tuple[int, str, int]], root: int) -> list[bytes]:
    """The /Outlines dictionary (object `root`) and one object per entry after it."""
    number = {i: root + 1 + i for i in range(len(entries))}
    parent: dict[int, int] = {}  # entry -> parent entry (-1: the root)
    children: dict[int, list[int]] = {-1: []}
    stack: list[int] = []
    for i, (level, _title, _page) in enumerate(entries):
        del stack[level:]
        parent[i] = stack[-1] if stack else -1
        children.setdefault(parent[i], []).append(i)
        children[i] = []
        stack.append(i)

    def ref(i: int) -> str:
        return f"{root if i == -1 else number[i]} 0 R"

    kids = children[-1]
    objects = [
        f"<< /Type /Outlines /First {ref(kids[0])} /Last {ref(kids[-1])} "
        f"/Count {len(entries)} >>".encode()
    ]
    for i, (_level, title, page) in enumerate(entries):
        siblings = children[parent[i]]
        at = siblings.index(i)
        links = f"/Parent {ref(parent[i])}"
        if at > 0:
            links += f" /Prev {ref(siblings[at - 1])}"
        if at + 1 < len(siblings):
            links += f" /Next {ref(siblings[at + 1])}"
        if children[i]:
            links += f" /First {ref(children[i][0])} /Last {ref(children[i][-1])}"
            links += f" /Count {len(children[i])}"
        objects.append(
            b"<< /Title "
            + _pdf_string(title)
            + f" {links} /Dest [{4 + 2 * page} 0 R /XYZ 0 792 0] >>".encode()
        )
    return objects


def make_pdf(
    path: str | Path, pages: list[str], outline: Sequence[tuple[int, str, int]] = ()
) -> Path:
    """Write a text PDF with one page per string (and bookmarks) and return its path."""
    path = Path(path)
    path.write_bytes(pdf_bytes(pages, outline))
    return path


def make_docx(
    path: str | Path,
    paragraphs: Sequence[str | tuple[int, str]],
    table: Sequence[Sequence[str]] | None = None,
) -> Path:
    """Write a .docx with the paragraphs (then an optional table of rows) and return its path.
    A (level, text) paragraph is a heading: 0 Title, N Heading N."""
    import docx

    path = Path(path)
    document = docx.Document()
    for item in paragraphs:
        if isinstance(item, tuple):
            document.add_heading(item[1], item[0])
        else:
            document.add_paragraph(item)
    if table:
        grid = document.add_table(rows=len(table), cols=max(len(row) for row in table))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    document.save(str(path))
    return path
