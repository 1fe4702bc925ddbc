"""Answer text (Markdown from the model) -> the HTML subset Qt draws, with [n] as source links.

Raw HTML in the answer is shown as text, never interpreted: the model may repeat what a document
says, and a document is untrusted.

Flagged sentences (the citation check found a claim its source does not back) are given as
character spans of the Markdown text: private-use characters mark them before conversion, so
they survive it wherever the sentence ends up, and become a red underline on a faint red tint
(Qt's rich text has no wavy underline) and a short note after the sentence.
"""

from __future__ import annotations

import re
from functools import cache
from html import escape

import markdown

_CITATION = re.compile(r"\[(\d{1,2})\]")
_CODE = re.compile(r"(<pre>.*?</pre>|<code>.*?</code>)", re.S)
# A flagged sentence: _OPEN before it, a character of its own (_CLOSE + i) after it.
_OPEN = "\ue000"
_CLOSE = 0xE100
_MAX_FLAGS = 0x100
_PRIVATE = re.compile("[\ue000-\ue1ff]")
# List, heading and quote markers at the start of a line: a sentence's mark goes after them.
_LINE_MARKER = re.compile(r"[ \t]*(?:[-*+]|\d{1,3}[.)]|#{1,6}|>)[ \t]+")
FLAG_COLOR = "#c0392b"
FLAG_TINT = "rgba(192, 57, 43, 28)"


@cache
def _converter() -> markdown.Markdown:
    md = markdown.Markdown(extensions=["fenced_code", "tables", "sane_lists", "nl2br"])
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md


def to_html(
    text: str,
    link_color: str | None = None,
    flags: list[tuple[int, int, str]] | tuple = (),
) -> str:
    """`flags`: (start, end, note) spans of `text` to mark as unsupported, the note after each."""
    text = _PRIVATE.sub("\ufffd", text)  # same length: flag offsets stay right
    notes: list[str] = []
    for start, end, note in sorted(flags, reverse=True)[:_MAX_FLAGS]:
        start, end = _flag_span(text, start, end)
        if start >= end:
            continue
        text = text[:start] + _OPEN + text[start:end] + chr(_CLOSE + len(notes)) + text[end:]
        notes.append(note)
    md = _converter()
    md.reset()
    html = md.convert(text)
    if notes:
        html = html.replace(
            _OPEN,
            f'<span style="text-decoration: underline; text-decoration-color: {FLAG_COLOR}; '
            f'background-color: {FLAG_TINT};">',
        )
        for i, note in enumerate(notes):
            html = html.replace(
                chr(_CLOSE + i),
                f'</span><span style="color:{FLAG_COLOR}; font-size:small;">'
                f"&nbsp;\u26a0&nbsp;{escape(note)}</span>",
            )
    style = f' style="color:{link_color}; text-decoration:none;"' if link_color else ""
    parts = _CODE.split(html)
    for i in range(0, len(parts), 2):  # outside code only
        parts[i] = _CITATION.sub(rf'<a href="source:\1"{style}><b>[\1]</b></a>', parts[i])
    return "".join(parts)


def _flag_span(text: str, start: int, end: int) -> tuple[int, int]:
    """The span inside `text`, trimmed of spaces, and starting after a list or heading marker
    when it starts a line (a mark before "- " would stop Markdown seeing the list)."""
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    line_start = text.rfind("\n", 0, start) + 1
    if not text[line_start:start].strip():
        m = _LINE_MARKER.match(text, line_start)
        if m and m.end() > start:
            start = min(end, m.end())
    return start, end
