"""Rebuild the office-style retrieval corpus from Debian documentation packages.

    python resources/bench/office/build_corpus.py OUT_DIR

Needs `apt-get` (after `apt-get update`) and `dpkg -x`; the .docx is written with python-docx
(a Confidant dependency), so run it with the project's Python. The result (about 4.3 MB, not
committed) is what resources/bench/office/questions.jsonl was written against:

- debian-reference-en 2.100: the Debian Reference as its 15 HTML pages (a web handbook)
- debian-faq 11.1: the Debian FAQ as plain text (debian-faq.en.txt)
- yt-dlp 2023.3.4: its README as plain text (yt-dlp-README.txt)
- rclone: its user manual in Markdown (rclone-MANUAL.md)
- zstd: README.md and CONTRIBUTING.md (zstd-README.md, zstd-CONTRIBUTING.md)
- maint-guide 1.2.53: the Debian New Maintainers' Guide, its HTML chapters rewritten as one
  Word document with Heading 1-3 styles (maint-guide.docx), since Debian ships no real .docx

Versions are whatever the configured Debian release serves; the questions name the file and a
short phrase of the passage that answers them, so a later version that moves text between
pages still scores the same as long as the phrase survives.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

PACKAGES = ["debian-reference-en", "debian-faq", "maint-guide", "yt-dlp", "rclone", "zstd"]

# maint-guide chapters in reading order (index.en.html's table of contents)
MAINT_GUIDE = [
    "start",
    "first",
    "modify",
    "dreq",
    "dother",
    "build",
    "checkit",
    "upload",
    "update",
    "advanced",
]

_SKIP_CLASSES = {"navheader", "navfooter", "toc"}
_INLINE_OR_VOID = {"a", "br", "img", "hr", "meta", "link", "span", "code", "em", "strong", "tt"}
_BLOCKS = {"p", "li", "dt", "dd", "pre", "td", "th", "title"}


class _DocBook(HTMLParser):
    """DocBook XSL HTML -> [(kind, text)], kind 'h1'..'h3' or 'p'; navigation and TOCs skipped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, skipping)
        self._text: list[str] = []
        self._kind: str | None = None

    def _skipping(self) -> bool:
        return any(skip for _, skip in self._stack)

    def handle_starttag(self, tag, attrs):
        classes = set((dict(attrs).get("class") or "").split())
        if tag in _INLINE_OR_VOID:
            return
        self._stack.append((tag, bool(classes & _SKIP_CLASSES) or tag in {"head", "script"}))
        if self._skipping():
            return
        if tag in {"h1", "h2", "h3", "h4"}:
            self._flush()
            self._kind = {"h1": "h1", "h2": "h2", "h3": "h3", "h4": "h3"}[tag]
        elif tag in _BLOCKS and self._kind is None:
            self._flush()
            self._kind = "pre" if tag == "pre" else "p"

    def handle_endtag(self, tag):
        if tag in _INLINE_OR_VOID:
            return
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break
        if tag in {"h1", "h2", "h3", "h4", "pre"} | _BLOCKS:
            self._flush()

    def handle_data(self, data):
        if self._skipping() or not self._stack:
            return
        self._text.append(data)

    def _flush(self) -> None:
        raw = "".join(self._text)
        self._text = []
        kind, self._kind = self._kind or "p", None
        text = raw.strip("\n") if kind == "pre" else " ".join(raw.split())
        if text.strip():
            self.blocks.append((kind, text))


def write_maint_guide_docx(html_dir: Path, out: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Debian New Maintainers' Guide", level=0)
    for name in MAINT_GUIDE:
        parser = _DocBook()
        parser.feed((html_dir / f"{name}.en.html").read_text(encoding="utf-8"))
        for kind, text in parser.blocks:
            if kind.startswith("h"):
                document.add_heading(text, level=int(kind[1]))
            else:
                document.add_paragraph(text)
    document.save(out)


def main(out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run(["apt-get", "download", *PACKAGES], cwd=work, check=True)
        root = work / "root"
        for deb in sorted(work.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        ref = out / "debian-reference"
        ref.mkdir(exist_ok=True)
        for page in sorted((root / "usr/share/debian-reference").glob("*.en.html")):
            shutil.copy(page, ref / page.name)
        doc = root / "usr/share/doc"
        unzip = {
            doc / "debian/FAQ/debian-faq.en.txt.gz": "debian-faq.en.txt",
            doc / "yt-dlp/README.txt.gz": "yt-dlp-README.txt",
            doc / "rclone/MANUAL.md.gz": "rclone-MANUAL.md",
            doc / "zstd/README.md.gz": "zstd-README.md",
            doc / "zstd/CONTRIBUTING.md.gz": "zstd-CONTRIBUTING.md",
        }
        for src, name in unzip.items():
            (out / name).write_bytes(gzip.decompress(src.read_bytes()))
        write_maint_guide_docx(doc / "maint-guide/html", out / "maint-guide.docx")
    print(f"office corpus in {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
