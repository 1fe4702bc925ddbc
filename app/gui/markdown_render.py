"""Answer text (Markdown from the model) -> the HTML subset Qt draws, with [n] as source links.

Raw HTML in the answer is shown as text, never interpreted: the model may repeat what a document
says, and a document is untrusted.
"""

from __future__ import annotations

import re
from functools import cache

import markdown

_CITATION = re.compile(r"\[(\d{1,2})\]")
_CODE = re.compile(r"(<pre>.*?</pre>|<code>.*?</code>)", re.S)


@cache
def _converter() -> markdown.Markdown:
    md = markdown.Markdown(extensions=["fenced_code", "tables", "sane_lists", "nl2br"])
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md


def to_html(text: str, link_color: str | None = None) -> str:
    md = _converter()
    md.reset()
    html = md.convert(text)
    style = f' style="color:{link_color}; text-decoration:none;"' if link_color else ""
    parts = _CODE.split(html)
    for i in range(0, len(parts), 2):  # outside code only
        parts[i] = _CITATION.sub(rf'<a href="source:\1"{style}><b>[\1]</b></a>', parts[i])
    return "".join(parts)
