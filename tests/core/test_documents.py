"""The format loaders against real files made here: PDF, DOCX, HTML and text, good and bad."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import psutil
import pytest
from pypdf import PdfReader, PdfWriter

from app.core.documents import (
    SUPPORTED_SUFFIXES,
    CorruptDocument,
    DocumentError,
    EmptyDocument,
    EncryptedDocument,
    NoTextLayer,
    Page,
    UnreadableFile,
    UnsupportedFormat,
    read_docx,
    read_html,
    read_pages,
    read_pdf,
    read_text,
    sniff,
)
from app.core.documents import pdf as pdf_module
from tests.pdfmaker import make_docx, make_pdf, pdf_bytes

THREE_PAGES = [
    "First page says hello.",
    "Second page: invoices\nand receipts.",
    "Third (last) page.",
]


@pytest.fixture(params=["pdfium", "pypdf"])
def pdf_engine(request, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a PDF test through PDFium (the default) and again through pypdf, the second reader
    for files PDFium will not open and for installs without pypdfium2."""
    if request.param == "pypdf":
        monkeypatch.setattr(pdf_module, "_open_with_pdfium", lambda path: None)
    return request.param


def text_of(pages: list[Page]) -> str:
    return "".join(p.text for p in pages)


def assert_plain_message(exc: DocumentError, name: str) -> None:
    assert f"'{name}'" in exc.message
    assert "Traceback" not in exc.message
    assert exc.message.endswith(".")


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_pages_are_numbered_from_one(tmp_path: Path, pdf_engine: str) -> None:
    path = make_pdf(tmp_path / "report.pdf", THREE_PAGES)
    assert sniff(path) == "pdf"
    pages = list(read_pages(path))
    assert [p.number for p in pages] == [1, 2, 3]
    assert "First page says hello." in pages[0].text
    assert "invoices" in pages[1].text and "receipts" in pages[1].text
    assert "Third (last) page." in pages[2].text


GUIDE_PAGES = [
    "Guide\n1 Billing\nInvoices are due in 30 days.\n1.1 Late fees\nA late fee of 2% applies.",
    "More about fees.\n2 Travel\nBook trains early.",
]
GUIDE_OUTLINE = [(0, "1 Billing", 0), (1, "1.1 Late fees", 0), (0, "2 Travel", 1)]


def test_pdf_bookmarks_become_headings_where_their_titles_are(
    tmp_path: Path, pdf_engine: str
) -> None:
    path = make_pdf(tmp_path / "guide.pdf", GUIDE_PAGES, GUIDE_OUTLINE)
    pages = list(read_pages(path))
    assert [[h.path for h in p.headings] for p in pages] == [
        [("1 Billing",), ("1 Billing", "1.1 Late fees")],
        [("2 Travel",)],
    ]
    for page in pages:
        for heading in page.headings:
            assert page.text[heading.offset :].startswith(heading.path[-1])


def test_a_pdf_without_bookmarks_has_no_headings(tmp_path: Path, pdf_engine: str) -> None:
    path = make_pdf(tmp_path / "plain.pdf", GUIDE_PAGES)
    assert all(p.headings == () for p in read_pages(path))


def test_pdf_reading_is_lazy(tmp_path: Path, pdf_engine: str) -> None:
    path = make_pdf(tmp_path / "lazy.pdf", THREE_PAGES)
    pages = read_pdf(path)
    first = next(pages)
    assert first.number == 1
    pages.close()


def test_pdf_skips_image_only_pages_but_keeps_numbers(tmp_path: Path, pdf_engine: str) -> None:
    path = make_pdf(tmp_path / "mixed.pdf", ["Cover text", "", "Back text"])
    assert [p.number for p in read_pages(path)] == [1, 3]


def test_pdf_without_text_layer(tmp_path: Path, pdf_engine: str) -> None:
    path = make_pdf(tmp_path / "scan.pdf", ["", ""])
    with pytest.raises(NoTextLayer) as info:
        list(read_pages(path))
    assert info.value.status == "skipped"
    assert "no text layer" in info.value.message and "OCR" in info.value.message
    assert_plain_message(info.value, "scan.pdf")


def _encrypt(source: Path, target: Path, password: str) -> Path:
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    with open(target, "wb") as f:
        writer.write(f)
    return target


def test_pdf_with_empty_user_password_opens(tmp_path: Path, pdf_engine: str) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", THREE_PAGES)
    locked = _encrypt(plain, tmp_path / "owner-only.pdf", "")
    assert PdfReader(locked).is_encrypted
    pages = list(read_pages(locked))
    assert [p.number for p in pages] == [1, 2, 3]
    assert "hello" in pages[0].text


def test_pdf_with_password_is_encrypted_document(tmp_path: Path, pdf_engine: str) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", THREE_PAGES)
    locked = _encrypt(plain, tmp_path / "salaries.pdf", "secret")
    with pytest.raises(EncryptedDocument) as info:
        list(read_pages(locked))
    assert info.value.status == "failed"
    assert info.value.message == (
        "'salaries.pdf' is password-protected. Remove the password (e.g. print it to a new PDF) "
        "and add it again."
    )


def test_truncated_pdf(tmp_path: Path, pdf_engine: str) -> None:
    data = pdf_bytes(THREE_PAGES * 5)
    path = tmp_path / "half.pdf"
    path.write_bytes(data[: len(data) // 2])
    try:
        pages = list(read_pages(path))
    except CorruptDocument as exc:
        assert_plain_message(exc, "half.pdf")
    else:  # pypdf may rebuild the cross-reference table and recover the first pages
        assert all(isinstance(p, Page) and p.text for p in pages)


def test_pdf_with_garbage_in_the_middle(tmp_path: Path, pdf_engine: str) -> None:
    data = bytearray(pdf_bytes(THREE_PAGES))
    middle = len(data) // 2
    data[middle : middle + 200] = os.urandom(200)
    path = tmp_path / "garbled.pdf"
    path.write_bytes(bytes(data))
    try:
        pages = list(read_pages(path))
    except (CorruptDocument, NoTextLayer) as exc:
        assert_plain_message(exc, "garbled.pdf")
    else:
        assert all(p.number in (1, 2, 3) for p in pages)


def test_pdf_named_pdf_without_pdf_content(tmp_path: Path) -> None:
    path = tmp_path / "invoice.pdf"
    path.write_text("<html><body>Session expired</body></html>")
    with pytest.raises(CorruptDocument) as info:
        sniff(path)
    assert "is named .pdf but is not a PDF" in info.value.message


def test_pdf_found_by_content_whatever_its_name(tmp_path: Path, pdf_engine: str) -> None:
    path = make_pdf(tmp_path / "scan-0001.dat", ["Hidden pdf"])
    assert sniff(path) == "pdf"
    assert "Hidden pdf" in text_of(list(read_pages(path)))


# --- DOCX -----------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables(tmp_path: Path) -> None:
    path = make_docx(
        tmp_path / "letter.docx",
        ["Dear client,", "Please find the totals below."],
        table=[["Item", "Amount"], ["Rent", "1200 €"]],
    )
    assert sniff(path) == "docx"
    pages = list(read_pages(path))
    assert len(pages) == 1 and pages[0].number is None
    text = pages[0].text
    assert text.index("Dear client,") < text.index("Please find") < text.index("Rent")
    assert "Item | Amount" in text and "Rent | 1200 €" in text
    assert pages[0].headings == ()


def test_docx_headings_become_sections_where_they_are(tmp_path: Path) -> None:
    path = make_docx(
        tmp_path / "policy.docx",
        [
            (0, "Leave policy"),
            (1, "1 Holidays"),
            "You get 27 days.",
            (2, "1.1 Carrying over"),
            "Up to 5 days.",
            "",
            (1, "2 Sick leave"),
            "Call before 10.",
        ],
        table=[["Form", "SL-1"]],
    )
    import docx  # a styled paragraph inside a table cell is text, never a heading

    document = docx.Document(str(path))
    document.tables[0].cell(0, 0).paragraphs[0].style = document.styles["Heading 1"]
    document.save(str(path))
    (page,) = read_pages(path)
    assert [h.path for h in page.headings] == [
        ("Leave policy",),
        ("Leave policy", "1 Holidays"),
        ("Leave policy", "1 Holidays", "1.1 Carrying over"),
        ("Leave policy", "2 Sick leave"),
    ]
    for heading in page.headings:
        assert page.text[heading.offset :].startswith(heading.path[-1] + "\n")
    assert page.text.endswith("Call before 10.\nForm | SL-1")


def test_docx_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "minutes.docx"
    path.write_bytes(b"\xd0\xcf\x11\xe0 this is an old .doc really" * 10)
    with pytest.raises(CorruptDocument) as info:
        list(read_pages(path))
    assert "is named .docx but is not a Word document" in info.value.message
    assert_plain_message(info.value, "minutes.docx")
    with pytest.raises(CorruptDocument):
        list(read_docx(path))


def test_docx_zip_without_word_part(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "fake.docx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(CorruptDocument, match=r"is named \.docx but is not a Word document"):
        sniff(path)


def test_truncated_docx(tmp_path: Path) -> None:
    good = make_docx(tmp_path / "good.docx", ["Some text"] * 50)
    path = tmp_path / "cut.docx"
    path.write_bytes(good.read_bytes()[:-300])
    with pytest.raises(CorruptDocument) as info:
        list(read_pages(path))
    assert_plain_message(info.value, "cut.docx")


def test_empty_docx(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "blank.docx", [])
    with pytest.raises(EmptyDocument):
        list(read_pages(path))


def test_excel_file_is_unsupported(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "budget.xlsx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(UnsupportedFormat, match="Excel"):
        sniff(path)


def _rewrite(path: Path, rename: dict[str, str] | None = None, extra=(), body: str | None = None):
    """Rewrite a .docx made by python-docx: move parts (relationships and content types follow),
    add parts, or put `body` (WordprocessingML) in the main part's body."""
    import re
    import zipfile

    rename = rename or {}
    with zipfile.ZipFile(path) as zf:
        parts = {info.filename: zf.read(info) for info in zf.infolist()}
    out = {}
    for name, data in parts.items():
        for old, new in rename.items():
            data = data.replace(f"/{old}".encode(), f"/{new}".encode())
            data = data.replace(f'Target="{old}"'.encode(), f'Target="{new}"'.encode())
        if name == "word/document.xml" and body is not None:
            new_body = f"<w:body>{body}</w:body>".encode()
            data = re.sub(rb"<w:body>.*</w:body>", new_body, data, count=1, flags=re.S)
        for old, new in rename.items():
            old_rels = f"{old.rsplit('/', 1)[0]}/_rels/{old.rsplit('/', 1)[1]}.rels"
            new_rels = f"{new.rsplit('/', 1)[0]}/_rels/{new.rsplit('/', 1)[1]}.rels"
            name = {old: new, old_rels: new_rels}.get(name, name)
        out[name] = data
    out.update(extra)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in out.items():
            zf.writestr(name, data)
    return path


def test_docx_main_part_is_the_one_its_relationships_name(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "moved.docx", [(1, "Terms"), "Rent is due on the first."])
    decoy = b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    decoy += b"<w:body><w:p><w:r><w:t>A decoy.</w:t></w:r></w:p></w:body></w:document>"
    _rewrite(path, {"word/document.xml": "word/main.xml"}, {"word/document.xml": decoy})
    assert sniff(path) == "docx"
    (page,) = read_pages(path)
    assert page.text == "Terms\nRent is due on the first." and "decoy" not in page.text
    assert [h.path for h in page.headings] == [("Terms",)]  # its styles were found through it


def test_docx_hidden_text_is_left_out(tmp_path: Path) -> None:
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    path = tmp_path / "hidden.docx"
    document = docx.Document()
    secret = document.styles.add_style("Secret", WD_STYLE_TYPE.CHARACTER)
    secret.font.hidden = True
    quiet = document.styles.add_style("Quiet", WD_STYLE_TYPE.PARAGRAPH)
    quiet.font.hidden = True
    p = document.add_paragraph("Visible start. ")
    p.add_run("Hidden directly. ").font.hidden = True
    p.add_run("Hidden by style. ").style = secret
    p.add_run("Visible end.")
    document.add_paragraph("A whole paragraph hidden by its style.", style=quiet)
    shown = document.add_paragraph("", style=quiet)
    shown.add_run("Shown again: vanish turned off.").font.hidden = False
    cell = document.add_table(rows=1, cols=1).cell(0, 0).paragraphs[0]
    cell.add_run("Cell visible.")
    cell.add_run(" Cell hidden.").font.hidden = True
    document.save(str(path))
    (page,) = read_pages(path)
    assert (
        page.text == "Visible start. Visible end.\nShown again: vanish turned off.\nCell visible."
    )
    assert "idden" not in page.text


def test_docx_text_is_what_word_shows(tmp_path: Path) -> None:
    """Tracked insertions, hyperlinks and content controls are text; deletions, field codes and
    the fallback copy of alternate content are not."""
    path = make_docx(tmp_path / "tracked.docx", ["placeholder"])
    body = (
        "<w:p><w:r><w:t xml:space='preserve'>Rent </w:t></w:r>"
        "<w:del w:id='1' w:author='A'><w:r><w:delText>1100</w:delText></w:r></w:del>"
        "<w:ins w:id='2' w:author='A'><w:r><w:t>1200</w:t></w:r></w:ins>"
        "<w:r><w:t xml:space='preserve'> a month, see </w:t></w:r>"
        "<w:hyperlink r:id='rId9' xmlns:r='urn:r'><w:r><w:t>the lease</w:t></w:r></w:hyperlink>"
        "<w:r><w:fldChar w:fldCharType='begin'/></w:r>"
        "<w:r><w:instrText> PAGE </w:instrText></w:r>"
        "<w:r><w:fldChar w:fldCharType='end'/></w:r>"
        "<w:sdt><w:sdtContent><w:r><w:t>.</w:t></w:r></w:sdtContent></w:sdt></w:p>"
        "<mc:AlternateContent xmlns:mc='http://schemas.openxmlformats.org/markup-compatibility/2006'>"
        "<mc:Choice Requires='w14'><w:p><w:r><w:t>Chosen.</w:t></w:r></w:p></mc:Choice>"
        "<mc:Fallback><w:p><w:r><w:t>Fallback.</w:t></w:r></w:p></mc:Fallback>"
        "</mc:AlternateContent>"
    )
    _rewrite(path, body=body)
    (page,) = read_pages(path)
    assert page.text == "Rent 1200 a month, see the lease.\nChosen."


def test_docx_bombs_fail_before_they_are_unpacked(tmp_path: Path, monkeypatch) -> None:
    from app.core.documents import docx as docx_module

    path = make_docx(tmp_path / "long.docx", ["All work and no play. " * 40] * 400)
    assert len(text_of(list(read_pages(path)))) > 300_000
    monkeypatch.setattr(docx_module, "MAX_XML_BYTES", 64 * 1024)
    with pytest.raises(CorruptDocument, match="expands to more than 0 MB") as info:
        list(read_pages(path))
    assert_plain_message(info.value, "long.docx")
    monkeypatch.setattr(docx_module, "MAX_XML_BYTES", 128 * 2**20)
    monkeypatch.setattr(docx_module, "TEXT_FLOOR", 100_000)
    monkeypatch.setattr(docx_module, "MAX_TEXT_RATIO", 10)  # its text packs ~100x: a bomb now
    with pytest.raises(CorruptDocument, match="far more than its size on disk") as info:
        list(read_pages(path))
    assert_plain_message(info.value, "long.docx")


def test_a_long_docx_comes_in_parts_with_its_sections(tmp_path: Path, monkeypatch) -> None:
    from app.core.documents import docx as docx_module

    monkeypatch.setattr(docx_module, "PART_CHARS", 2000)
    items: list = []
    for chapter in range(3):
        items.append((1, f"Chapter {chapter}"))
        items += [f"Paragraph {chapter}.{i} " + "words " * 60 for i in range(10)]
    pages = list(read_pages(make_docx(tmp_path / "book.docx", items)))
    assert len(pages) > 3 and all(p.number is None for p in pages)
    assert all(len(p.text) <= 2000 + 400 for p in pages)
    assert "\n".join(p.text for p in pages) == "\n".join(
        t if isinstance(t, str) else t[1] for t in items
    )
    headings = [(p.text[h.offset :].split("\n")[0], h.path) for p in pages for h in p.headings]
    assert headings == [(f"Chapter {c}", (f"Chapter {c}",)) for c in range(3)]


# --- HTML -----------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><title>Opening hours</title>
<style>body { color: red; }</style>
<script>var secret = "do not index";</script>
</head>
<body>
<h1>Our office</h1>
<p>Open <b>Monday</b> to Friday.</p>
<noscript>Please enable JavaScript</noscript>
<ul><li>Mornings</li><li>Afternoons &amp; evenings</li></ul>
<table><tr><td>Mon</td><td>9–17</td></tr></table>
<script>document.write("nope")</script>
</body></html>
"""


def test_html_visible_text_only(tmp_path: Path) -> None:
    path = tmp_path / "hours.html"
    path.write_text(PAGE, encoding="utf-8")
    assert sniff(path) == "html"
    pages = list(read_pages(path))
    assert len(pages) == 1 and pages[0].number is None
    lines = pages[0].text.splitlines()
    assert lines[0] == "Opening hours"
    assert "Our office" in lines
    assert "Open Monday to Friday." in lines
    assert "Mornings" in lines and "Afternoons & evenings" in lines
    assert any("Mon" in line and "9–17" in line for line in lines)
    text = pages[0].text
    assert "secret" not in text and "color" not in text and "nope" not in text
    assert "JavaScript" not in text


def test_html_found_by_content(tmp_path: Path) -> None:
    path = tmp_path / "saved page.txt"
    path.write_text("\ufeff  \n<!doctype html><html><body><p>Hi there</p></body></html>")
    assert sniff(path) == "html"
    assert text_of(list(read_pages(path))) == "Hi there"


def test_html_meta_charset(tmp_path: Path) -> None:
    path = tmp_path / "old.htm"
    path.write_bytes(
        b'<html><head><meta charset="windows-1252"></head><body>caf\xe9 \x96 na\xefve</body></html>'
    )
    assert text_of(list(read_pages(path))) == "café – naïve"


def test_mostly_script_html_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "app.html"
    path.write_text(
        "<html><head><script>" + "var x = 1;\n" * 1000 + "</script></head>"
        "<body><div id=root></div><script src=app.js></script></body></html>"
    )
    with pytest.raises(EmptyDocument) as info:
        list(read_pages(path))
    assert "has no readable text (it is mostly script)" in info.value.message
    assert_plain_message(info.value, "app.html")


def test_huge_html_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core.documents import html

    monkeypatch.setattr(html, "MAX_HTML_BYTES", 1000)
    path = tmp_path / "dump.html"
    path.write_text("<html><body>" + "<p>x</p>" * 500 + "</body></html>")
    with pytest.raises(UnsupportedFormat, match="too large"):
        list(read_html(path))


# --- Text -----------------------------------------------------------------------------------

SAMPLE = "café – naïve\nGrüße, señor. 10 € “quoted”\n"


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [
        ("utf-8", b""),
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-32-le", b"\xff\xfe\x00\x00"),
        ("cp1252", b""),
    ],
)
def test_text_encodings(tmp_path: Path, encoding: str, prefix: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(prefix + SAMPLE.encode(encoding))
    assert sniff(path) == "text"
    assert text_of(list(read_pages(path))) == SAMPLE


def test_short_cp1252_text(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_bytes("café – naïve".encode("cp1252"))
    assert text_of(list(read_text(path))) == "café – naïve"


def test_cp1251_text_is_not_read_as_western(tmp_path: Path) -> None:
    text = "Привет, как дела? Это тестовый документ для проверки кодировки.\n" * 5
    path = tmp_path / "ru.txt"
    path.write_bytes(text.encode("cp1251"))
    assert text_of(list(read_text(path))) == text


def test_utf16_without_bom(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes("name,amount\nRent,1200\n".encode("utf-16-le"))
    assert text_of(list(read_pages(path))) == "name,amount\nRent,1200\n"


def test_markdown_and_unknown_suffix_text(tmp_path: Path) -> None:
    md = tmp_path / "README.md"
    md.write_text("# Title\n\nSome *markdown*.\n")
    assert sniff(md) == "text"
    other = tmp_path / "notes"
    other.write_text("no suffix at all\n")
    assert text_of(list(read_pages(other))) == "no suffix at all\n"


def test_binary_named_txt(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(UnsupportedFormat) as info:
        sniff(path)
    assert "looks like binary data, not text" in info.value.message
    assert_plain_message(info.value, "data.txt")
    with pytest.raises(UnsupportedFormat, match="binary"):
        list(read_text(path))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("photo.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\x00JFIF" * 20),
        ("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00" + bytes(range(256))),
        ("archive.zip", b"PK\x05\x06" + b"\x00" * 18),
    ],
)
def test_other_binary_formats_are_unsupported(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UnsupportedFormat) as info:
        list(read_pages(path))
    assert info.value.status == "skipped"
    assert_plain_message(info.value, name)


def test_whitespace_only_text_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.txt"
    path.write_text("  \n\n\t \n")
    with pytest.raises(EmptyDocument):
        list(read_pages(path))


def test_non_latin_name_with_spaces(tmp_path: Path) -> None:
    path = tmp_path / "Отчёт 2024 – résumé.txt"
    path.write_text("Итоги года: всё хорошо.\n", encoding="utf-8")
    assert sniff(path) == "text"
    assert text_of(list(read_pages(path))) == "Итоги года: всё хорошо.\n"
    path.write_bytes(b"\x00\x01\x02\x03" * 100)
    with pytest.raises(UnsupportedFormat) as info:
        sniff(path)
    assert "'Отчёт 2024 – résumé.txt'" in info.value.message


def test_text_pieces_break_between_words(tmp_path: Path) -> None:
    words = " ".join(f"word{i}" for i in range(60_000))  # one long line, ~500 KB
    path = tmp_path / "long.txt"
    path.write_text(words)
    pieces = [p.text for p in read_text(path)]
    assert len(pieces) > 5
    assert "".join(pieces) == words
    for piece in pieces[:-1]:
        assert piece.endswith(" ")
        assert len(piece) <= 64 * 1024


def test_large_text_file_is_streamed_with_bounded_memory(tmp_path: Path) -> None:
    line = "The quick brown fox jumps over the lazy dog. Ärger über 5 € – naïve café.\n"
    block = (line * (1024 * 1024 // len(line.encode("utf-8")) + 1)).encode("utf-8")[: 1 << 20]
    block = block[: block.rindex(b"\n") + 1]
    path = tmp_path / "big.log"
    with open(path, "wb") as f:
        for _ in range(200):
            f.write(block)
    expected_chars = len(block.decode("utf-8")) * 200
    process = psutil.Process()
    rss_before = rss_peak = process.memory_info().rss
    tracemalloc.start()
    try:
        total = count = 0
        for page in read_pages(path):
            total += len(page.text)
            count += 1
            if count % 200 == 0:
                rss_peak = max(rss_peak, process.memory_info().rss)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == expected_chars
    assert count >= expected_chars // (64 * 1024)  # pieces of at most 64 K characters
    assert peak < 16 * 1024 * 1024, f"peak Python allocations {peak / 1e6:.1f} MB"
    assert rss_peak - rss_before < 100 * 1024 * 1024


# --- Files that cannot be read ---------------------------------------------------------------


def test_zero_bytes(tmp_path: Path) -> None:
    for name in ("empty.txt", "empty.pdf", "empty.docx", "empty.html"):
        path = tmp_path / name
        path.touch()
        with pytest.raises(EmptyDocument) as info:
            sniff(path)
        assert info.value.message.startswith(f"'{name}' is empty (0 bytes).")
        for loader in (read_pages, read_pdf, read_docx, read_html, read_text):
            with pytest.raises(EmptyDocument):
                list(loader(path))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "gone.pdf"
    for call in (sniff, lambda p: list(read_pages(p)), lambda p: list(read_text(p))):
        with pytest.raises(UnreadableFile) as info:
            call(path)
        assert "could not be found" in info.value.message
        assert_plain_message(info.value, "gone.pdf")


def test_directory_is_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "Folder.txt"
    folder.mkdir()
    with pytest.raises(UnreadableFile, match="is a folder"):
        sniff(folder)
    with pytest.raises(UnreadableFile):
        list(read_pages(folder))


def test_file_without_permission(tmp_path: Path) -> None:
    path = tmp_path / "private.txt"
    path.write_text("secret\n")
    if os.name != "posix" or os.geteuid() == 0:
        # root reads anything: the same error path is taken by a file that vanished instead
        path.unlink()
        with pytest.raises(UnreadableFile):
            list(read_pages(path))
        return
    path.chmod(0)
    try:
        with pytest.raises(UnreadableFile) as info:
            list(read_pages(path))
        assert "permission denied" in info.value.message
    finally:
        path.chmod(0o600)


def test_permission_error_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    path = tmp_path / "locked.txt"
    path.write_text("secret\n")
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(UnreadableFile) as info:
        list(read_pages(path))
    assert "permission denied" in info.value.message
    assert_plain_message(info.value, "locked.txt")


def test_parser_crash_becomes_corrupt_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pdf_engine: str
) -> None:
    import pypdf
    import pypdfium2

    path = make_pdf(tmp_path / "odd.pdf", THREE_PAGES)

    def explode(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(pypdf, "PdfReader", explode)
    monkeypatch.setattr(pypdfium2, "PdfDocument", explode)
    with pytest.raises(CorruptDocument) as info:
        list(read_pages(path))
    assert_plain_message(info.value, "odd.pdf")


def test_suffixes() -> None:
    assert {".pdf", ".docx", ".txt", ".md", ".html", ".htm"} <= SUPPORTED_SUFFIXES


# --- Regressions found by fuzzing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(22, "Invalid argument"), CorruptDocument),  # zipfile seeking a bad offset
        (OSError(5, "Input/output error"), UnreadableFile),  # a failing disk or share
    ],
)
def test_os_errors_inside_a_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, expected: type
) -> None:
    import zipfile

    path = make_docx(tmp_path / "memo.docx", ["Hello"])

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(zipfile, "ZipFile", fail)
    with pytest.raises(expected) as info:
        list(read_docx(path))
    assert_plain_message(info.value, "memo.docx")


def test_html_meta_charset_that_is_not_a_text_encoding(tmp_path: Path) -> None:
    path = tmp_path / "odd.html"
    path.write_bytes(b'<html><head><meta charset="uu"></head><body><p>Still fine</p></body></html>')
    assert text_of(list(read_pages(path))) == "Still fine"


def test_deeply_nested_html_is_refused_quickly(tmp_path: Path) -> None:
    path = tmp_path / "nested.html"
    path.write_text("<html><body>" + "<div>" * 40_000 + "deep" + "</div>" * 40_000)
    with pytest.raises(UnsupportedFormat, match="nested far too deeply"):
        list(read_pages(path))
    path.write_text("<html><body>" + ("<div>" * 500 + "x" + "</div>" * 500) * 40)
    assert "x" in text_of(list(read_pages(path)))


def test_pdf_with_unknown_security_handler(tmp_path: Path, pdf_engine: str) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", THREE_PAGES)
    locked = _encrypt(plain, tmp_path / "drm.pdf", "secret")
    data = locked.read_bytes()
    assert b"/Filter /Standard" in data
    locked.write_bytes(data.replace(b"/Filter /Standard", b"/Filter /Adobe.PPKLite"))
    with pytest.raises(EncryptedDocument):
        list(read_pages(locked))


def test_pdfium_joins_a_word_hyphenated_across_lines(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "hyphen.pdf", ["Small tools that are re-\nusable by everyone."])
    text = text_of(list(read_pdf(path)))
    assert "reusable" in text
    assert "\ufffe" not in text and "\r" not in text


def test_a_pdf_that_pdfium_refuses_is_read_by_pypdf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pypdfium2

    path = make_pdf(tmp_path / "quirky.pdf", THREE_PAGES)

    def refuse(*args, **kwargs):
        raise pypdfium2.PdfiumError("Failed to load document (PDFium: Data format error).", 3)

    monkeypatch.setattr(pypdfium2, "PdfDocument", refuse)
    pages = list(read_pdf(path))
    assert [p.number for p in pages] == [1, 2, 3]
    assert "invoices" in pages[1].text


def test_pdfium_and_pypdf_read_the_same_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_pdf(tmp_path / "both.pdf", THREE_PAGES)
    by_pdfium = [p.text.split() for p in read_pdf(path)]
    monkeypatch.setattr(pdf_module, "_open_with_pdfium", lambda path: None)
    assert by_pdfium == [p.text.split() for p in read_pdf(path)]
