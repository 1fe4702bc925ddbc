"""Files that are tiny on disk and huge when opened, made by the tests, through the real Ingestor,
the real embedder and a real Chroma: each fails (or, for a Word file with a huge picture, is read
without the picture) with a message naming it, in bounded time, while the memory of the whole
process tree stays under 2 GiB, and the rest of the library is untouched and searchable.

The compressed data is one DEFLATE block repeated: a full flush makes each copy independent, so
a gigabyte costs a megabyte to write and no time to compress; the checksums of the repeats are
combined arithmetically (zlib's crc32_combine and adler32_combine), so every file is valid.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import time
import zlib
from pathlib import Path

import psutil
import pytest

from app.core.cancel import CancelToken
from app.core.documents import CorruptDocument
from app.core.events import FileDone, FileStarted, IngestFinished
from app.core.extraction import PageReader
from app.core.ingest import IngestOptions, Ingestor
from app.core.library import Library
from tests.pdfmaker import make_docx, make_pdf

pytestmark = pytest.mark.slow
GIB = 2**30
TREE_LIMIT = 2 * GIB
APP_TREE = 1 * GIB  # the app's tree while ingesting (peak 0.94-0.99 GB: docs/performance.md)
FILE_SECONDS = 60  # each hostile file, from its start to its message (the target is 3 minutes)


# ------------------------------------------------------------------ checksums of repeats
def _gf2_times(mat: list[int], vec: int) -> int:
    out = i = 0
    while vec:
        if vec & 1:
            out ^= mat[i]
        vec >>= 1
        i += 1
    return out


def _gf2_square(mat: list[int]) -> list[int]:
    return [_gf2_times(mat, m) for m in mat]


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B from those of A and B (zlib's crc32_combine)."""
    if len2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]
    even = _gf2_square(odd)
    odd = _gf2_square(even)
    while True:
        even = _gf2_square(odd)
        if len2 & 1:
            crc1 = _gf2_times(even, crc1)
        len2 >>= 1
        if not len2:
            break
        odd = _gf2_square(even)
        if len2 & 1:
            crc1 = _gf2_times(odd, crc1)
        len2 >>= 1
        if not len2:
            break
    return crc1 ^ crc2


def adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    base = 65521
    rem = len2 % base
    s1 = adler1 & 0xFFFF
    s2 = rem * s1 % base
    s1 = (s1 + (adler2 & 0xFFFF) + base - 1) % base
    s2 = (s2 + (adler1 >> 16) + (adler2 >> 16) + base - rem) % base
    return s1 | (s2 << 16)


def _repeated(combine, check: int, size: int, n: int, empty: int) -> int:
    total, unit = empty, check
    while n:
        if n & 1:
            total = combine(total, unit, size)
        n >>= 1
        unit, size = combine(unit, unit, size), size * 2
    return total


def _deflated(data: bytes, final: bool = False) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FINISH if final else zlib.Z_FULL_FLUSH)


def bomb(head: bytes, block: bytes, n: int, tail: bytes) -> tuple[bytes, int, int]:
    """Raw DEFLATE of head + block * n + tail, its CRC-32 and size, from one copy of block."""
    raw = _deflated(head) + _deflated(block) * n + _deflated(tail, final=True)
    crc = _repeated(crc32_combine, zlib.crc32(block), len(block), n, 0)
    crc = crc32_combine(
        crc32_combine(zlib.crc32(head), crc, len(block) * n), zlib.crc32(tail), len(tail)
    )
    return raw, crc, len(head) + len(block) * n + len(tail)


def zlib_bomb(block: bytes, n: int) -> bytes:
    """A zlib stream (what /FlateDecode holds) of block * n."""
    adler = _repeated(adler32_combine, zlib.adler32(block), len(block), n, 1)
    raw = _deflated(block) * n + _deflated(b"", final=True)
    return b"\x78\xda" + raw + struct.pack(">L", adler)


def test_the_bombs_are_what_they_claim():
    raw, crc, size = bomb(b"<head>", b"block " * 7, 9, b"</head>")
    data = zlib.decompress(raw, -15)
    assert data == b"<head>" + b"block " * 63 + b"</head>" and len(data) == size
    assert crc == zlib.crc32(data)
    assert zlib.decompress(zlib_bomb(b"0 0 m ", 11)) == b"0 0 m " * 11


# ------------------------------------------------------------------ ZIP and Word parts
def zip_bytes(entries: list[tuple[str, bytes | tuple[bytes, int, int]]]) -> bytes:
    """A ZIP of (name, data) entries, deflated; data may be a ready (raw, crc, size)."""
    out, central = bytearray(), bytearray()
    for name, data in entries:
        raw, crc, size = bomb(data, b"", 0, b"") if isinstance(data, bytes) else data
        n = name.encode()
        offset = len(out)
        fields = (0x21, crc, len(raw), size, len(n))
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, *fields, 0) + n + raw
        central += struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, *fields, 0, 0, 0, 0, 0, offset
        )
        central += n
    count = len(entries)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, count, count, len(central), len(out), 0)
    return bytes(out + central + end)


_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
HEAD = f'<?xml version="1.0" encoding="UTF-8"?><w:document {_W}><w:body>'.encode()
TAIL = b"</w:body></w:document>"


def para(text: str) -> str:
    return f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>"


def word(body: str) -> bytes:
    return HEAD + body.encode() + TAIL


def docx(main: str, content, extra=(), rels: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A Word file whose package relationships name `main` as its document."""
    types = (
        '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
        'package/2006/content-types"><Default Extension="rels" ContentType="application/'
        'vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" '
        f'ContentType="application/xml"/><Override PartName="/{main}" ContentType="{_MAIN}"/>'
        "</Types>"
    )

    def relationships(items) -> bytes:
        body = "".join(
            f'<Relationship Id="rId{i}" Type="{_REL}{kind}" Target="{target}"/>'
            for i, (kind, target) in enumerate(items, 1)
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            f'openxmlformats.org/package/2006/relationships">{body}</Relationships>'
        ).encode()

    entries = [
        ("[Content_Types].xml", types.encode()),
        ("_rels/.rels", relationships([("officeDocument", main)])),
        (main, content),
        *extra,
    ]
    if rels:
        folder, name = main.rsplit("/", 1)
        entries.append((f"{folder}/_rels/{name}.rels", relationships(rels)))
    return zip_bytes(entries)


PARAGRAPH = para("Clause nine of the tenancy.").encode()
MANY_PARAGRAPHS = PARAGRAPH * (2**20 // len(PARAGRAPH))  # a MB that packs into about 1 KB


def hostile_docx(folder: Path) -> dict[str, str]:
    """Name -> what the message must say."""
    n = GIB // len(MANY_PARAGRAPHS)
    (folder / "decoy.docx").write_bytes(  # 1 GB behind a decoy document.xml
        docx(
            "word/main.xml",
            bomb(HEAD, MANY_PARAGRAPHS, n, TAIL),
            extra=[("word/document.xml", word(para("A harmless decoy.")))],
        )
    )
    n = 250 * 2**20 // len(MANY_PARAGRAPHS)
    (folder / "quarter gig.docx").write_bytes(
        docx("word/document.xml", bomb(HEAD, MANY_PARAGRAPHS, n, TAIL))
    )
    # Under the size limit, but a few KB that give millions of characters of text.
    n = 24 * 2**20 // len(MANY_PARAGRAPHS)
    (folder / "text bomb.docx").write_bytes(
        docx("word/document.xml", bomb(HEAD, MANY_PARAGRAPHS, n, TAIL))
    )
    # The ZIP directory says 1 MB; the data inflates to 1 GB (zipfile stops at the 1 MB).
    raw, _crc, _size = bomb(HEAD, MANY_PARAGRAPHS, GIB // len(MANY_PARAGRAPHS), TAIL)
    (folder / "lying directory.docx").write_bytes(docx("word/document.xml", (raw, 0, 2**20)))
    return {
        "decoy.docx": "expands to more than 128 MB",
        "quarter gig.docx": "expands to more than 128 MB",
        "text bomb.docx": "far more than its size on disk",
        "lying directory.docx": "damaged",
    }


def picture_docx(path: Path) -> None:
    """A letter with a 3 GB picture: the text is read, the picture never unpacked."""
    n = 3 * GIB // 2**20
    image = bomb(b"\x89PNG\r\n\x1a\n", bytes(2**20), n, b"")
    body = para("The boiler service contract renews every October with Hartley Heating.")
    body += '<w:p><w:r><w:drawing><a:blip xmlns:a="urn:a" r:embed="rId1" xmlns:r="urn:r"/>'
    body += "</w:drawing></w:r></w:p>"
    path.write_bytes(
        docx(
            "word/document.xml",
            word(body),
            extra=[("word/media/image1.png", image)],
            rels=(("image", "media/image1.png"),),
        )
    )


# ------------------------------------------------------------------ PDF
def pdf_with_content(stream: bytes, first_page: str) -> bytes:
    """A PDF whose first page says `first_page` and whose second page's content is `stream`
    (a zlib stream, /FlateDecode)."""
    font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
    text = f"BT /F1 12 Tf 72 720 Td ({first_page}) Tj ET".encode()
    page = (
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 1 0 R >> >> /Contents %d 0 R >>"
    )
    objects = [
        font,
        b"<< /Type /Pages /Kids [4 0 R 6 0 R] /Count 2 >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        page % 3,
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        page % 5,
        b"<< /Type /Catalog /Pages 2 0 R >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % at for at in offsets)
    out += b"trailer\n<< /Size %d /Root 7 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def hostile_pdfs(folder: Path) -> dict[str, str]:
    spaces = zlib_bomb(b" " * 2**20, 1024)  # a 1 MB file, 1 GB of page content
    (folder / "blank gigabyte.pdf").write_bytes(pdf_with_content(spaces, "Cover page"))
    shows = b"BT /F1 12 Tf 72 720 Td (Lorem ipsum dolor) Tj ET\n" * 20_000
    operators = zlib_bomb(shows, GIB // len(shows))  # 3 MB, 1 GB of text operators
    (folder / "text gigabyte.pdf").write_bytes(pdf_with_content(operators, "Cover page"))
    return {
        "blank gigabyte.pdf": "MB of memory",
        "text gigabyte.pdf": "MB of memory",
    }


# ------------------------------------------------------------------ measuring
class TreePeak:
    """Peak resident memory of this process and all its children, summed, every 20 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self.baseline = 0  # the tree at the start (in a long test session, more than the app's)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = me.memory_info().rss
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(0.02)

    def __enter__(self) -> TreePeak:
        me = psutil.Process()
        self.baseline = me.memory_info().rss
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                self.baseline += child.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_ingest(library, embedder, paths):
    ingestor = Ingestor(library, embedder, IngestOptions())
    started: dict[str, float] = {}
    got: dict[str, tuple[str, str | None, float]] = {}
    for event in ingestor.run([str(p) for p in paths], CancelToken()):
        if isinstance(event, FileStarted):
            started[Path(event.path).name] = time.perf_counter()
        elif isinstance(event, FileDone):
            name = Path(event.path).name
            seconds = time.perf_counter() - started.get(name, time.perf_counter())
            got[name] = (event.status, event.error, seconds)
        elif isinstance(event, IngestFinished):
            assert not event.cancelled
    return got


def live_ids(library: Library) -> dict[str, list[str]]:
    out = {}
    for d in library.documents():
        if d.status == "ready":
            rows = library._db.execute(
                "SELECT id FROM chunks WHERE doc_id=? AND version=? ORDER BY idx", (d.id, d.hash)
            )
            out[d.path] = [r[0] for r in rows]
    return out


def found(library: Library, word: str, name: str) -> bool:
    hits = library.hits_for_ids(library.keyword_search(word, 5))
    return any(Path(h.path).name == name and word in h.text for h in hits.values())


# ------------------------------------------------------------------ the tests
def test_hostile_files_fail_alone_in_bounded_memory_and_time(tmp_path, embedder):
    (tmp_path / "home").mkdir()
    library = Library(tmp_path / "home")
    good = tmp_path / "good"
    good.mkdir()
    make_pdf(good / "handbook.pdf", ["The fire assembly point is the north car park."] * 2)
    make_docx(good / "leave.docx", ["Every employee receives twenty-seven days of holiday."])
    assert {s for s, *_ in run_ingest(library, embedder, [good]).values()} == {"added"}
    before = live_ids(library)

    bad = tmp_path / "bad"
    bad.mkdir()
    expected = hostile_docx(bad) | hostile_pdfs(bad)
    picture_docx(bad / "with picture.docx")
    (bad / "zz after.txt").write_text("The server room door code is 5531-OSPREY.\n")
    assert max(p.stat().st_size for p in bad.iterdir()) < 4 * 2**20  # tiny on disk

    started = time.perf_counter()
    with TreePeak() as memory:
        got = run_ingest(library, embedder, [bad])
    seconds = time.perf_counter() - started
    report = "\n".join(f"{n}: {s} in {t:.1f} s: {e}" for n, (s, e, t) in sorted(got.items()))
    print(
        f"\n{report}\nwhole run {seconds:.1f} s, tree peak {memory.peak / GIB:.2f} GiB "
        f"(from {memory.baseline / GIB:.2f} GiB at the start)"
    )

    for name, words in expected.items():
        status, error, took = got[name]
        assert status == "failed", (name, status, error)
        assert f"'{name}'" in error and words in error and "Traceback" not in error, (name, error)
        assert took < FILE_SECONDS, (name, took)
    # The app's own tree while ingesting is about 1 GB (docs/performance.md); what a hostile file
    # may add on top is what keeps the whole under TREE_LIMIT. Measured as growth: run in the
    # full suite, this process also holds every earlier test's models and windows.
    assert memory.peak - memory.baseline < TREE_LIMIT - APP_TREE, (memory.baseline, memory.peak)
    # The picture is never unpacked; the letter's text is read.
    assert got["with picture.docx"][0] == "added", got["with picture.docx"]
    assert found(library, "Hartley", "with picture.docx")
    # The file after them, and everything from before, are there and searchable.
    assert got["zz after.txt"][0] == "added"
    assert found(library, "OSPREY", "zz after.txt")
    assert found(library, "assembly", "handbook.pdf") and found(library, "holiday", "leave.docx")
    after = live_ids(library)
    assert {p: after[p] for p in before} == before
    assert library.verify() == []
    # Nothing of the decoy or the bombs was stored.
    assert not found(library, "decoy", "decoy.docx") and not found(library, "Clause", "decoy.docx")
    library.close()


def test_a_page_that_takes_too_long_stops_the_worker_with_a_message(tmp_path):
    """The time limit, on its own: a page that is slow to read (256 MB of content) against a
    limit it cannot meet; the next file gets a fresh worker and is read."""
    slow = tmp_path / "slow.pdf"
    slow.write_bytes(pdf_with_content(zlib_bomb(b" " * 2**20, 256), "Cover page"))
    good = make_pdf(tmp_path / "good.pdf", ["The parking permit is renewed in May."])
    reader = PageReader(batch=1, rss_limit=4 * GIB)
    try:
        assert "parking permit" in "".join(p.text for p in reader.pages(good))  # started
        reader._watchdog.call_seconds = 0.05
        with pytest.raises(CorruptDocument) as info:
            list(reader.pages(slow))
        message = info.value.message
        assert "'slow.pdf'" in message and "longer than 0.05 s" in message, message
        reader._watchdog.call_seconds = 60
        assert "parking permit" in "".join(p.text for p in reader.pages(good))
    finally:
        reader.close()
