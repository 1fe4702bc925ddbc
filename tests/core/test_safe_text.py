"""A document's text quoted in the window's and the CLI's own words: one line, cut at a word,
and nothing in it can act on a terminal or a label (an escape sequence, a bidi override)."""

from __future__ import annotations

from app.core.safe_text import snippet


def test_a_snippet_is_one_line_cut_at_a_word():
    text = "Visitors   sign in\nat the front desk\tand wear a badge at all times."
    assert snippet(text, 200) == "Visitors sign in at the front desk and wear a badge at all times."
    cut = snippet(text, 30)
    assert cut == "Visitors sign in at the…" and len(cut) <= 30


def test_controls_and_bidi_overrides_are_shown_not_obeyed():
    hostile = "Invoice total \u202e0001$ \x1b[2J paid"
    shown = snippet(hostile, 200)
    assert "\u202e" not in shown and "\x1b" not in shown
    assert "\\u202e" in shown and "\\x1b" in shown  # visible, so a reader sees something is odd
    assert shown.startswith("Invoice total ") and shown.endswith(" paid")
