"""HTML and Markdown read with their structure: headings start chunks, navigation is left out,
Markdown loses its markup but keeps its code. Real files written here, the real loaders, the
embedder's real tokenizer, and one ingestion and search through the real Library."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import default_embedder_path
from app.core.chunking import PageTokenizer, chunk_pages
from app.core.documents import read_pages, sniff
from app.core.documents.base import Page


@pytest.fixture(scope="module")
def tokenizer():
    """The embedded MiniLM's own tokenizer, without loading the model."""
    return PageTokenizer((Path(default_embedder_path()) / "tokenizer.json").read_text())


def one_page(path: Path) -> Page:
    pages = list(read_pages(path))
    assert len(pages) == 1
    return pages[0]


def titles(page: Page) -> list[tuple[str, ...]]:
    return [h.path for h in page.headings]


def assert_headings_point_at_their_titles(page: Page) -> None:
    for heading in page.headings:
        title = heading.path[-1]
        assert page.text[heading.offset : heading.offset + len(title)] == title


FILLER = (
    "Each request is checked by the office manager within five working days, and the answer "
    "is sent by email together with the reference number of the request. "
)

# --- HTML -------------------------------------------------------------------------------------

# What a generated manual's page looks like (DocBook, Sphinx, asciidoc): a banner, bars of
# links above and below, a sidebar menu, a footer, around the content.
MANUAL_PAGE = """<!DOCTYPE html>
<html><head><title>Acme Staff Handbook</title></head>
<body>
<div id="banner"><a href="https://example.com/get/"><span>Download the ebook</span></a></div>
<header class="site"><a href="/">Acme Intranet</a> <span>Signed in as guest</span></header>
<ul><li><a href="p.html">Previous page</a></li><li>Staff handbook index</li>
  <li><a href="n.html">Next page</a></li></ul>
<ul class="docnav top"><li><a href="prev.html">Prev</a></li>
  <li class="home">The Acme Staff Handbook</li><li><a href="next.html">Next</a></li></ul>
<nav><ul><li><a href="a.html">Holidays</a></li><li><a href="b.html">Sick leave</a></li></ul></nav>
<div role="navigation" class="sphinxsidebar"><h3>Quick search</h3><p>Type words to search.</p></div>
<div class="breadcrumbs">Home &raquo; Policies &raquo; Travel</div>
<div class="toc"><p><strong>Table of Contents</strong></p>
  <dl><dt><a href="#b">Booking trains</a></dt><dt><a href="#e">Expense claims</a></dt></dl></div>
<h1>Travel policy</h1>
<p>Travel must be approved before booking. See <a href="forms.html">the travel form</a> for
the details of what to enter. FILLER</p>
<h2>Booking trains</h2>
<p>Trains are booked in second class. FILLER</p>
<p>Book online:</p><p><a href="https://rail.example.com/">https://rail.example.com/</a></p>
<ul><li><a href="https://example.com/guide">J. Smith, A guide to booking night trains across
  Europe for business travellers, 2019.</a></li></ul>
<h3>Night trains</h3>
<p>A sleeper berth may be booked for journeys over six hours. FILLER</p>
<div class="titlepage"><h2><a href="#expenses">Expense claims</a></h2></div>
<p>Claims are filed within thirty days, receipts attached. FILLER</p>
<dl><dt><a href="claim.html">claim-form(1)</a></dt><dd>Fill in one line per receipt.</dd></dl>
<table><tr><td><a href="rates.html">Mileage</a></td><td>0.30 per kilometre driven</td></tr></table>
<article><header><h2>Staff story</h2></header><p>Anna took the night train to Vienna.</p>
  <footer>Posted in March</footer></article>
<p><a href="faq.html">Frequently asked questions</a></p>
<ul class="docnav"><li><a href="prev.html"><strong>Prev</strong>6.2. Holiday allowance</a></li>
  <li><a href="#"><strong>Up</strong></a></li>
  <li><a href="index.html"><strong>Home</strong></a></li>
  <li><a href="next.html"><strong>Next</strong>6.4. Sick leave reporting</a></li></ul>
<footer><p>Copyright 2024 Acme Ltd. All rights reserved.</p></footer>
<div id="footer"><div id="footer-text">Last updated 2024-05-31 00:35:55 UTC</div></div>
</body></html>
""".replace("FILLER", FILLER * 3)

NAVIGATION = [
    "Download the ebook",
    "Acme Intranet",
    "Signed in as guest",
    "Prev",
    "Next",
    "The Acme Staff Handbook",
    "Holidays",
    "Sick leave",
    "Previous page",
    "Staff handbook index",
    "Quick search",
    "Table of Contents",
    "Type words",
    "Policies",
    "Frequently asked",
    "Holiday allowance",
    "Up",
    "Copyright",
    "Last updated",
]


def test_html_headings_become_sections_with_their_paths(tmp_path: Path) -> None:
    path = tmp_path / "travel.html"
    path.write_text(MANUAL_PAGE.replace("Acme Staff Handbook</title>", "Intranet</title>"))
    page = one_page(path)
    assert titles(page) == [
        ("Intranet",),
        ("Intranet", "Travel policy"),
        ("Intranet", "Travel policy", "Booking trains"),
        ("Intranet", "Travel policy", "Booking trains", "Night trains"),
        ("Intranet", "Travel policy", "Expense claims"),
        ("Intranet", "Travel policy", "Staff story"),
    ]
    assert page.headings[0].offset == 0 and page.text.startswith("Intranet\nTravel policy\n")
    assert_headings_point_at_their_titles(page)


def test_html_navigation_banners_and_footers_are_left_out(tmp_path: Path) -> None:
    path = tmp_path / "travel.html"
    path.write_text(MANUAL_PAGE)
    text = one_page(path).text
    words = set(text.replace(".", " ").split())
    for nav in NAVIGATION:
        assert nav not in (text if " " in nav else words), nav
    # ... and the content around it is all there: links inside sentences, a defined term that
    # is a link, a table row's link cell, an article's own header and footer.
    for kept in (
        "See the travel form for",
        "claim-form(1)\n\nFill in one line per receipt.",
        "Mileage 0.30 per kilometre driven",
        "Book online:\n\nhttps://rail.example.com/",  # an address spelled out is content
        "J. Smith, A guide to booking",  # so is a linked reference, a sentence long
        "Staff story",
        "Anna took the night train to Vienna.",
        "Posted in March",
    ):
        assert kept in text, kept


def test_a_title_that_repeats_the_first_heading_is_not_repeated(tmp_path: Path) -> None:
    path = tmp_path / "git-commit.html"
    path.write_text(
        "<html><head><title>git-commit(1)</title></head><body>"
        "<h1>\n  git-commit(1) Manual Page\n</h1><p>Record changes to the repository.</p>"
        "<h2>SYNOPSIS</h2><pre>git commit [-a]\n    [--amend]</pre></body></html>"
    )
    page = one_page(path)
    assert page.text.startswith("git-commit(1) Manual Page\n\nRecord changes")
    assert titles(page) == [
        ("git-commit(1) Manual Page",),
        ("git-commit(1) Manual Page", "SYNOPSIS"),
    ]
    assert "git commit [-a]\n[--amend]" in page.text  # preformatted lines kept
    assert_headings_point_at_their_titles(page)


def test_a_page_of_links_is_kept_whole(tmp_path: Path) -> None:
    """Bookmarks, an index: when the links are all there is, they are the content."""
    path = tmp_path / "bookmarks.html"
    links = "".join(
        f'<li><a href="https://example.com/{i}">Supplier {i} catalogue</a></li>' for i in range(8)
    )
    path.write_text(f"<html><body><h1>Bookmarks</h1><ul>{links}</ul></body></html>")
    page = one_page(path)
    assert "Supplier 0 catalogue" in page.text and "Supplier 7 catalogue" in page.text


def test_html_sections_start_chunks_that_lead_with_their_title(tmp_path: Path, tokenizer) -> None:
    path = tmp_path / "travel.html"
    path.write_text(MANUAL_PAGE)
    page = one_page(path)
    chunks = list(chunk_pages([page], tokenizer, max_tokens=256, overlap=16))
    # The page's title and its first heading are too short to be a passage on their own.
    assert chunks[0].text.startswith("Acme Staff Handbook\nTravel policy\n\nTravel must")
    by_start = {c.start: c for c in chunks}
    for heading in page.headings[2:]:
        chunk = by_start.get(heading.offset)
        assert chunk is not None, f"no chunk starts at {heading.path[-1]!r}"
        assert chunk.text.startswith(heading.path[-1])
    night = page.text.index("Night trains")
    expenses = page.text.index("Expense claims")
    for c in chunks:  # no passage mixes two sections
        assert not (c.start < night < c.end) and not (c.start < expenses < c.end)
        assert not any(f"\n{nav}\n" in f"\n{c.text}\n" for nav in NAVIGATION)


def test_html_reads_the_same_every_time(tmp_path: Path) -> None:
    """The viewer reads the file again to place a hit's offsets: the text must not change."""
    path = tmp_path / "travel.html"
    path.write_text(MANUAL_PAGE)
    assert list(read_pages(path)) == list(read_pages(path))


def test_marker_characters_in_a_page_do_not_make_headings(tmp_path: Path) -> None:
    path = tmp_path / "odd.html"
    path.write_text(
        "<html><body><p>a \ue001 b \ue000 c</p><h3><a id='x'></a> </h3><h2>Real</h2><p>text</p>"
    )
    page = one_page(path)
    assert page.text == "a b c\n\nReal\n\ntext"
    assert titles(page) == [("Real",)]


# --- Markdown ---------------------------------------------------------------------------------

README = """\
Project Falcon
==============

<!-- internal: do not publish -->
Falcon **syncs** your _calendar_ with the `office` server. See the [manual][man] or
[the website](https://example.com "Falcon") for more.[^1] ![Falcon logo](logo.png)
It syncs every hour.[^sleep]

[^sleep]: Unless the laptop sleeps.

[man]: https://example.com/manual
[^1]: https://example.com/footnote

## Installing

1. Download the package.
2. Run the installer:

   ```sh
   ./install --prefix=/opt/falcon  # **not** emphasis
   ```

3. Restart.

- Works on *Linux*
  - and on __macOS__

Settings
--------

| Key | Meaning |
| --- | ------- |
| `sync_hours` | How often it syncs |
| ~~legacy~~ | Ignored |

    indented_code = [1, 2]  # kept as written

> Quoted *advice*: back up first.
"""


def test_markdown_reads_as_text_without_markup(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(README)
    assert sniff(path) == "text"  # sniffing by content is unchanged; .md picks the reader
    text = one_page(path).text
    assert "Falcon syncs your calendar with the office server." in text
    assert "See the manual or\nthe website for more. Falcon logo\nIt syncs every hour.\n" in text
    assert "\n\nUnless the laptop sleeps.\n\n" in text  # a footnote's text, without its label
    prose = text.replace("./install --prefix=/opt/falcon  # **not** emphasis", "")
    prose = prose.replace("  # kept as written", "")
    for markup in ("**", "__", "`", "](", "[man]", "https://", "<!--", "internal", "[^1]", "#"):
        assert markup not in prose, markup
    assert "~~" not in text and "legacy | Ignored" in text
    assert "Key | Meaning\nsync_hours | How often it syncs" in text
    assert "Installing\n\n1. Download the package.\n\n2. Run the installer:\n./install" in text
    assert "3. Restart.\n\n- Works on Linux\n  - and on macOS\n\nSettings" in text
    assert "Quoted advice: back up first." in text


def test_markdown_code_is_kept_verbatim_without_fences(tmp_path: Path) -> None:
    path = tmp_path / "README.markdown"
    path.write_text(README)
    text = one_page(path).text
    assert "./install --prefix=/opt/falcon  # **not** emphasis" in text
    assert "indented_code = [1, 2]  # kept as written" in text
    assert "```" not in text and "sh\n" not in text


def test_markdown_headings_atx_and_setext_with_paths(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(README)
    page = one_page(path)
    assert titles(page) == [
        ("Project Falcon",),
        ("Project Falcon", "Installing"),
        ("Project Falcon", "Settings"),
    ]
    assert page.text.startswith("Project Falcon\n\nFalcon syncs")
    assert_headings_point_at_their_titles(page)


def test_markdown_sections_start_chunks(tmp_path: Path, tokenizer) -> None:
    body = "\n\n".join(f"## Step {n}\n\n{FILLER * 4}" for n in range(1, 5))
    path = tmp_path / "guide.md"
    path.write_text(f"# Guide\n\n{body}\n")
    page = one_page(path)
    chunks = list(chunk_pages([page], tokenizer, max_tokens=128, overlap=16))
    assert chunks[0].text.startswith("Guide\n\nStep 1\n\nEach request")
    starts = {c.start: c.text for c in chunks}
    for n in range(2, 5):
        at = page.text.index(f"Step {n}")
        assert starts.get(at, "").startswith(f"Step {n}\n"), f"Step {n} does not start a chunk"
        assert all(not (c.start < at < c.end) for c in chunks)


def test_large_markdown_is_parsed_in_pieces_without_breaking_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.documents import markdown

    monkeypatch.setattr(markdown, "SOURCE_CHARS", 2000)
    monkeypatch.setattr(markdown, "MAX_SOURCE_CHARS", 8000)
    monkeypatch.setattr(markdown, "PIECE_CHARS", 3000)
    code = "\n\n".join(f"line_{i} = *{i}*" for i in range(150))  # blank lines inside a fence
    sections = "\n\n".join(f"## Part {n}\n\nSome **bold** words number {n}." for n in range(200))
    path = tmp_path / "big.md"
    path.write_text(f"# Book\n\n{sections}\n\n```\n{code}\n```\n\n## After\n\nThe end.\n")
    pages = list(read_pages(path))
    assert len(pages) > 3
    assert all(len(p.text) <= 3000 for p in pages)
    text = "\n\n".join(p.text for p in pages)
    assert code in text  # the fence's content whole and verbatim, though longer than a piece
    assert "**" not in text.replace(code, "")
    paths = [h.path for p in pages for h in p.headings]
    assert paths[0] == ("Book",)
    assert paths[1:201] == [("Book", f"Part {n}") for n in range(200)]
    assert paths[-1] == ("Book", "After")
    for page in pages:
        assert_headings_point_at_their_titles(page)
    assert pages == list(read_pages(path))


def test_markdown_front_matter_is_text_not_a_heading(tmp_path: Path) -> None:
    path = tmp_path / "install.md"
    path.write_text("---\ntitle: Installing Falcon\nlayout: page\n---\n# Install\n\nRun it.\n")
    page = one_page(path)
    assert page.text == "title: Installing Falcon\nlayout: page\n\nInstall\n\nRun it."
    assert titles(page) == [("Install",)]
    assert_headings_point_at_their_titles(page)


def test_markdown_of_only_markup_is_empty(tmp_path: Path) -> None:
    from app.core.documents import EmptyDocument

    path = tmp_path / "notes.md"
    path.write_text("<!-- nothing yet -->\n\n[ref]: https://example.com\n\n---\n")
    with pytest.raises(EmptyDocument):
        list(read_pages(path))


# --- Through ingestion and search -------------------------------------------------------------

SIBLING = """<html><head><title>{title}</title></head><body>
<div id="banner"><a href="https://example.com/get/">Download the ebook</a></div>
<p><a href="index.html">Home</a> | <a href="a.html">Holidays</a> | <a href="b.html">Travel</a></p>
<h2>{title}</h2><p>{body}</p>
<ul class="navfooter"><li><a href="p.html">Prev</a></li><li>Acme Staff Handbook</li>
<li><a href="n.html">Next</a></li></ul></body></html>"""


@pytest.mark.slow
def test_ingested_html_and_markdown_keep_navigation_out_and_find_sections(
    tmp_path: Path, embedder
) -> None:
    from app.core.cancel import CancelToken
    from app.core.ingest import IngestOptions, Ingestor
    from app.core.library import Library
    from app.core.retrieval import Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    bodies = {
        "Holidays": "Staff get twenty-eight days of paid holiday a year, booked in the planner.",
        "Travel": "Trains are booked in second class; a sleeper berth is allowed overnight.",
        "Parking": "The car park opens at seven; visitors park in the bays by the gate.",
    }
    for title, body in bodies.items():
        (docs / f"{title.lower()}.html").write_text(SIBLING.format(title=title, body=body))
    (docs / "falcon.md").write_text(README)
    home = tmp_path / "home"
    home.mkdir()
    library = Library(home)
    try:
        options = IngestOptions(chunk_tokens=64, chunk_overlap=8)
        events = list(Ingestor(library, embedder, options).run([str(docs)], CancelToken()))
        assert events
        assert {d.status for d in library.documents()} == {"ready"}
        texts = [r[0] for r in library._db.execute("SELECT text FROM chunks")]
        assert texts
        for nav in ("Download the ebook", "Prev", "Next", "Acme Staff Handbook", "Home |"):
            assert not any(nav in t for t in texts), nav
        for markup in ("**", "`", "](", "<!--"):
            assert not any(markup in t for t in texts if "not** emphasis" not in t), markup
        retriever = Retriever(library, embedder)
        hit = retriever.search("how many days of paid holiday do staff get", k=1)[0]
        assert Path(hit.path).name == "holidays.html"
        assert hit.text.startswith("Holidays\n")
        page = one_page(Path(hit.path))
        assert page.text[hit.start : hit.end] == hit.text  # the viewer's offsets hold
        hit = retriever.search("how do I install Falcon with a prefix", k=1)[0]
        assert Path(hit.path).name == "falcon.md"
        assert "./install --prefix=/opt/falcon" in hit.text
    finally:
        library.close()
