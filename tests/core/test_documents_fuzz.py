"""Fuzzing the loaders: random and mutated files may fail, but only with a DocumentError."""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from app.core.documents import (
    DocumentError,
    Page,
    read_docx,
    read_html,
    read_pages,
    read_pdf,
    read_text,
    sniff,
)
from tests.pdfmaker import make_docx, pdf_bytes

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

HTML_SEED = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Fuzz</title>"
    "<style>p{color:red}</style><script>var a = '<p>';</script></head><body>"
    "<h1>Heading</h1><p>Some <b>bold</b> café text<br>and a line.</p>"
    "<table><tr><td>A</td><td>B</td></tr></table><pre>  keep\n  this</pre>"
    "<svg><text>hidden</text></svg><noscript>no</noscript></body></html>"
).encode()
TEXT_SEED = "Plain text – naïve café\nSecond line\n".encode("cp1252")


def _docx_seed() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = make_docx(
            Path(tmp) / "seed.docx", ["Hello world", "Second paragraph"], [["a", "b"], ["c", "d"]]
        )
        return path.read_bytes()


def _pdf_seeds() -> list[bytes]:
    """A hand-written PDF, the same rewritten by pypdf with compressed streams, and encrypted."""
    plain = pdf_bytes(["Page one text", "Page two (more) text", ""])
    seeds = [plain]
    for encrypt in (False, True):
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(plain)))
        for page in writer.pages:
            page.compress_content_streams()
        if encrypt:
            writer.encrypt(user_password="", owner_password="o", algorithm="RC4-128")
        out = io.BytesIO()
        writer.write(out)
        seeds.append(out.getvalue())
    return seeds


PDF_SEEDS = _pdf_seeds()
PDF_SEED = PDF_SEEDS[0]
DOCX_SEED = _docx_seed()


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """The seed file with a few random flips, insertions, deletions or a truncation."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "overwrite"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 256))]
        elif op == "truncate":
            del data[at:]
        else:
            chunk = draw(st.binary(min_size=1, max_size=64))
            data[at : at + len(chunk)] = chunk
    return bytes(data)


def _consume(call: Callable[[Path], Iterator[Page] | str], data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz file{suffix}"
        path.write_bytes(data)
        try:
            result = call(path)
            if isinstance(result, str):
                assert result in {"pdf", "docx", "html", "text"}
            else:
                for page in result:
                    assert isinstance(page, Page)
                    assert isinstance(page.text, str)
                    assert page.number is None or page.number >= 1
        except DocumentError as exc:
            assert exc.status in {"failed", "skipped"}
            assert "'fuzz file" in exc.message


@FUZZ
@given(st.binary(max_size=4096))
def test_pdf_random_bytes(data: bytes) -> None:
    _consume(read_pdf, data, ".pdf")


@FUZZ
@given(
    st.one_of(
        st.sampled_from(PDF_SEEDS).flatmap(mutated),
        st.binary(max_size=64).map(lambda b: b"%PDF-1.4\n" + b),
    )
)
def test_pdf_mutated(data: bytes) -> None:
    _consume(read_pdf, data, ".pdf")


@FUZZ
@given(st.binary(max_size=4096))
def test_docx_random_bytes(data: bytes) -> None:
    _consume(read_docx, data, ".docx")


@FUZZ
@given(mutated(DOCX_SEED))
def test_docx_mutated(data: bytes) -> None:
    _consume(read_docx, data, ".docx")


def _rezip(xml: bytes) -> bytes:
    """The seed .docx with its word/document.xml replaced (a valid zip, damaged XML)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(DOCX_SEED)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = xml if item.filename == "word/document.xml" else src.read(item)
            dst.writestr(item, data)
    return out.getvalue()


with zipfile.ZipFile(io.BytesIO(DOCX_SEED)) as _zf:
    DOCX_XML = _zf.read("word/document.xml")


@FUZZ
@given(mutated(DOCX_XML))
def test_docx_mutated_xml(xml: bytes) -> None:
    _consume(read_docx, _rezip(xml), ".docx")


@FUZZ
@given(st.one_of(st.binary(max_size=4096), mutated(TEXT_SEED)))
def test_text_random_and_mutated(data: bytes) -> None:
    _consume(read_text, data, ".txt")


@FUZZ
@given(st.one_of(st.binary(max_size=4096), st.text(max_size=2000).map(str.encode)))
def test_html_random(data: bytes) -> None:
    _consume(read_html, data, ".html")


@FUZZ
@given(mutated(HTML_SEED))
def test_html_mutated(data: bytes) -> None:
    _consume(read_html, data, ".html")


SUFFIXES = st.sampled_from(["", ".pdf", ".docx", ".txt", ".md", ".html", ".png", ".exe", ".csv"])
ANY_FILE = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from(PDF_SEEDS).flatmap(mutated),
    mutated(DOCX_SEED),
    mutated(HTML_SEED),
    mutated(TEXT_SEED),
)


@FUZZ
@given(ANY_FILE, SUFFIXES)
def test_read_pages_any_suffix(data: bytes, suffix: str) -> None:
    _consume(read_pages, data, suffix)


@FUZZ
@given(ANY_FILE, SUFFIXES)
def test_sniff_any_suffix(data: bytes, suffix: str) -> None:
    _consume(sniff, data, suffix)


@pytest.mark.parametrize("seed", [*PDF_SEEDS, DOCX_SEED, HTML_SEED])
def test_every_truncation_of_seed(seed: bytes) -> None:
    """Cut each seed at many lengths: the half-written file a sync tool leaves behind."""
    step = max(1, len(seed) // 150)
    for length in range(1, len(seed), step):
        for suffix in (".pdf", ".docx", ".html"):
            _consume(read_pages, seed[:length], suffix)


def test_seeds_are_valid() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for data, suffix, expected in (
            *((seed, ".pdf", "Page one text") for seed in PDF_SEEDS),
            (DOCX_SEED, ".docx", "Hello world"),
            (HTML_SEED, ".html", "Heading"),
        ):
            path = Path(tmp) / f"seed{suffix}"
            path.write_bytes(data)
            assert expected in "".join(p.text for p in read_pages(path))
            path = Path(tmp) / "seed.txt"
            path.write_bytes(TEXT_SEED)
            assert "".join(p.text for p in read_pages(path)) == TEXT_SEED.decode("cp1252")
