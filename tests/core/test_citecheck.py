"""The citation check: which sentences cite what (pure), and whether the cited passage backs the
sentence (with the real all-MiniLM-L6-v2)."""

from __future__ import annotations

import pytest

from app.core.citecheck import check_citations, mend, split_answer, split_passage
from app.core.events import Hit, Source


def cited(answer: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(answer[s.start : s.end], s.cited) for s in split_answer(answer)]


# ----------------------------------------------------------------------------- splitting
def test_markers_at_the_end_of_sentences_in_every_form():
    answer = "Vectors hold one type [1][2]. Lists hold any [1, 3]. Ranges work [2-4]."
    assert cited(answer) == [
        ("Vectors hold one type [1][2].", (1, 2)),
        ("Lists hold any [1, 3].", (1, 3)),
        ("Ranges work [2-4].", (2, 3, 4)),
    ]


def test_markers_after_the_full_stop_belong_to_the_sentence_before():
    answer = "The default is 3.5 inches.[2] See e.g. the manual, i.e. the guide. [3] Done."
    assert cited(answer) == [
        ("The default is 3.5 inches.[2]", (2,)),
        ("See e.g. the manual, i.e. the guide. [3]", (3,)),
        ("Done.", ()),
    ]


def test_a_marker_mid_sentence_keeps_the_sentence_whole():
    answer = "Lists hold mixed types [1], while vectors hold one [2]. Next."
    assert cited(answer)[0] == ("Lists hold mixed types [1], while vectors hold one [2].", (1, 2))


def test_bullets_and_numbered_items_are_sentences_without_their_marks():
    answer = "In brief:\n- First point [1]\n* Second point [2].\n1. Third point [3]\n2) Fourth [1]"
    assert cited(answer) == [
        ("In brief:", ()),
        ("First point [1]", (1,)),
        ("Second point [2].", (2,)),
        ("Third point [3]", (3,)),
        ("Fourth [1]", (1,)),
    ]


def test_markers_at_the_start_of_the_next_line_go_to_the_sentence_above():
    answer = "The plot uses solid lines.\n[2]\nThe axes are scaled [1].\n[3] Colour is set by lc."
    assert cited(answer) == [
        ("The plot uses solid lines.", (2,)),
        ("The axes are scaled [1].", (1,)),
        ("[3] Colour is set by lc.", (3,)),  # the sentence above has its own: this one's
    ]


def test_r_indexing_and_code_are_not_citations():
    answer = (
        "Use `x[1]` for the first element [2]. Also y[3] and lst[[4]] work.\n"
        "R prints `[1] 2.5` for it [3].\n```r\nz[4]\n```\nEnd [1]."
    )
    assert cited(answer) == [
        ("Use `x[1]` for the first element [2].", (2,)),
        ("Also y[3] and lst[[4]] work.", ()),
        ("R prints `[1] 2.5` for it [3].", (3,)),
        ("End [1].", (1,)),
    ]


def test_passages_mend_pdf_line_breaks_and_hyphenation():
    text = "The function seq() is a more gen-\neral facility for generating\nsequences. It has five"
    assert mend(text) == (
        "The function seq() is a more general facility for generating sequences. It has five"
    )


def test_passage_sentences_split_at_stops_before_capitals_but_not_after_abbreviations():
    text = (
        "Binary packages are platform-specific, e.g. Windows ones.\nThey need no tools to\n"
        "install. Source packages need compilers and related tools."
    )
    spans = [text[a:b] for a, b in split_passage(text)]
    assert spans == [
        "Binary packages are platform-specific, e.g. Windows ones.",
        "They need no tools to\ninstall.",
        "Source packages need compilers and related tools.",
    ]


def test_a_long_run_without_full_stops_is_cut_at_line_breaks():
    text = "\n".join(f"arg{i} an object of class foo used for bar number {i}" for i in range(12))
    pieces = [text[a:b] for a, b in split_passage(text)]
    assert len(pieces) > 2
    assert "\n".join(pieces) == text  # nothing lost, cut only at line ends
    assert all(len(p.split()) <= 45 for p in pieces)


def test_an_answer_without_citations_needs_no_embedding():
    def embed(texts):
        raise AssertionError("embedded")

    assert check_citations("I could not find this in your documents.", (), embed) == ()


# ----------------------------------------------------------------------------- with MiniLM
SEQ = (
    "Chapter 2: Simple manipulations; numbers and vectors\n"
    "The function seq() is a more general facility for generating sequences. It has five\n"
    "arguments, only some of which may be specified in any one call. The first two argu-\n"
    "ments, if given, specify the beginning and end of the sequence, and if these are the\n"
    "only two arguments given the result is the same as the colon operator. That is\n"
    "seq(2,10) is the same vector as 2:10."
)
HIDDEN3D = (
    "The set hidden3d command enables hidden line removal for surface plotting. Each surface\n"
    "has its hidden parts removed with respect to itself and to other surfaces, if more than\n"
    "one surface is plotted. Hidden3d does not affect solid surfaces drawn using the pm3d\n"
    "mode."
)
ODBC = (
    "On Windows ODBC support is part of the OS. On Unix/Linux you will need an ODBC Driver\n"
    "Manager such as unixODBC and an installed driver for your database system. Windows\n"
    "provides drivers not just for DBMSs but also for Excel spreadsheets."
)


def sources(*texts: str) -> tuple[Source, ...]:
    return tuple(
        Source(n, Hit(f"c{n}", f"/docs/manual{n}.pdf", 10 + n, text, 0.5))
        for n, text in enumerate(texts, start=1)
    )


@pytest.fixture(scope="module")
def counted(embedder):
    calls: list[int] = []

    def embed(texts: list[str]):
        calls.append(len(texts))
        return embedder.embed(texts)

    embed.calls = calls
    return embed


@pytest.mark.slow
def test_a_paraphrase_of_its_passage_is_supported_and_shows_the_backing_sentence(counted):
    answer = "The seq() function takes five arguments, but only some may be given in one call [1]."
    (check,) = check_citations(answer, sources(SEQ, HIDDEN3D), counted)
    assert check.cited == (1,)
    assert check.unsupported == ()
    assert any("five\narguments" in s for s in check.support[1])  # the passage's own text
    assert all(s in SEQ for s in check.support[1])


@pytest.mark.slow
def test_a_swapped_citation_is_flagged_and_the_right_one_passes(counted):
    answer = (
        "Hidden line removal does not apply to solid pm3d surfaces [1]. "
        "Windows includes ODBC support in the operating system [3]."
    )
    swapped, right = check_citations(answer, sources(SEQ, HIDDEN3D, ODBC), counted)
    assert swapped.unsupported == (1,)
    assert swapped.support == {}
    assert right.unsupported == ()


@pytest.mark.slow
def test_a_wrong_number_is_flagged_even_when_the_words_match(counted):
    answer = (
        "The seq() function has six arguments [1]. seq(2,10) gives the same vector as 2:10 [1]."
    )
    wrong, right = check_citations(answer, sources(SEQ), counted)
    assert wrong.unsupported == (1,)
    assert right.unsupported == ()


@pytest.mark.slow
def test_a_citation_to_a_source_that_does_not_exist_is_flagged(counted):
    answer = "Windows includes ODBC support in the operating system [1][7]."
    (check,) = check_citations(answer, sources(ODBC), counted)
    assert check.cited == (1, 7)
    assert check.unsupported == (7,)
    assert set(check.support) == {1}


@pytest.mark.slow
def test_offsets_point_at_each_cited_sentence_and_one_embed_call_serves_the_answer(counted):
    answer = (
        "Here is what I found.\n\n"
        "- Solid pm3d surfaces are not affected by hidden3d [2].\n"
        "- On Unix you need an ODBC driver manager such as unixODBC.\n[3]\n"
        "That is all."
    )
    before = len(counted.calls)
    checks = check_citations(answer, sources(SEQ, HIDDEN3D, ODBC), counted)
    assert len(counted.calls) == before + 1
    assert [answer[c.start : c.end] for c in checks] == [
        "Solid pm3d surfaces are not affected by hidden3d [2].",
        "On Unix you need an ODBC driver manager such as unixODBC.",
    ]
    assert [(c.cited, c.unsupported) for c in checks] == [((2,), ()), ((3,), ())]
