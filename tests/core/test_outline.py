"""Outline entries -> section paths per page, and where each title sits in a page's text."""

from app.core.documents.outline import MAX_TITLE_CHARS, locate, sections_by_page


def test_paths_follow_the_levels_of_the_outline():
    entries = [
        (0, "1 Money", 0),
        (1, "Expenses", 0),
        (2, "Receipts", 1),
        (1, "Payroll", 2),
        (0, "2 People", 2),
        (2, "Deeper than its parent", 3),  # a level skipped: still under its nearest parent
    ]
    assert sections_by_page(entries) == {
        0: [("1 Money",), ("1 Money", "Expenses")],
        1: [("1 Money", "Expenses", "Receipts")],
        2: [("1 Money", "Payroll"), ("2 People",)],
        3: [("2 People", "Deeper than its parent")],
    }


def test_entries_without_a_page_or_title_are_dropped_but_keep_their_children_placed():
    entries = [
        (0, "Part A", None),  # points nowhere: no heading, still a parent
        (1, "  Spaced\n  out  ", 4),
        (0, "", 5),  # an untitled bookmark: no heading
        (1, "Child of untitled", 5),
        (0, "Bad page", -1),
        (0, "x" * 500, 6),
    ]
    got = sections_by_page(entries)
    assert got[4] == [("Part A", "Spaced out")]
    assert got[5] == [("Child of untitled",)]
    assert -1 not in got
    assert got[6] == [("x" * MAX_TITLE_CHARS,)]


def test_locate_finds_titles_across_line_breaks_and_case():
    text = "Chapter 3 continues here.\n3.2 Travel\nPOLICY\nBook early.\n3.3 Meals\nKeep receipts."
    headings = locate(text, [("Travel policy",), ("Meals",)])
    assert [(h.offset, h.path) for h in headings] == [
        (text.index("Travel"), ("Travel policy",)),
        (text.index("Meals"), ("Meals",)),
    ]


def test_a_title_missing_from_the_page_keeps_the_outline_order():
    text = "Alpha section\nbody text\nGamma part\nmore text"
    headings = locate(text, [("Alpha section",), ("Beta is drawn as an image",), ("Gamma part",)])
    assert [(h.offset, h.path[-1]) for h in headings] == [
        (0, "Alpha section"),
        (0, "Beta is drawn as an image"),
        (text.index("Gamma"), "Gamma part"),
    ]


def test_a_title_also_quoted_earlier_on_the_page_is_found_after_the_previous_heading():
    text = "Intro\nsee Costs below.\nBudget\nplan\nCosts\nfigures"
    headings = locate(text, [("Budget",), ("Costs",)])
    assert headings[1].offset == text.index("Costs\nfigures")


def test_a_skipped_level_does_not_leave_a_deeper_title_behind():
    from app.core.documents.outline import section_paths

    entries = [(1, "A"), (3, "C, under A"), (2, "B"), (3, "D")]
    assert list(section_paths(entries)) == [
        ("A",),
        ("A", "C, under A"),
        ("A", "B"),
        ("A", "B", "D"),
    ]
