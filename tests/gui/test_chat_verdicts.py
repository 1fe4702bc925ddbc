"""The chat view draws the core's two verdicts: a question the library does not answer (closest
passages folded away, not cited), and the citation check (unsupported sentences marked). Both go
through the window's event handling into the real chat history and come back the same.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCharFormat, QTextDocument

from app.core.events import (
    AnswerDone,
    CitationCheck,
    GenerationStats,
    Hit,
    Source,
    SourcesFound,
    TextPiece,
)
from app.core.history import ChatHistory
from app.gui.chat_controller import ChatController
from app.gui.chat_view import CLOSEST_LABEL, NOT_ANSWERED, ChatView, MessageBubble, SourceButton
from app.gui.conversations_view import ConversationsView
from app.gui.markdown_render import FLAG_COLOR, to_html
from tests.gui.helpers import ScriptedLane

ANSWER = (
    "The Zephyr budget is 48,000 euros [1]. It was approved by the mayor of Paris [2]. "
    "Marta signed it [1]."
)
FLAGGED = "It was approved by the mayor of Paris [2]."


def _sources() -> tuple[Source, ...]:
    return (
        Source(
            1,
            Hit(
                "c1",
                "/docs/zephyr.pdf",
                2,
                "The Zephyr budget is 48,000 euros. Marta signed it.",
                0.8,
                0,
                50,
            ),
        ),
        Source(2, Hit("c2", "/docs/cafeteria.pdf", 1, "The cafeteria opens at eight.", 0.4)),
    )


def _checks() -> tuple[CitationCheck, ...]:
    first = ANSWER.index("The Zephyr")
    flagged = ANSWER.index(FLAGGED)
    last = ANSWER.index("Marta signed")
    return (
        CitationCheck(first, flagged - 1, (1,), (), {1: ("The Zephyr budget is 48,000 euros.",)}),
        CitationCheck(flagged, flagged + len(FLAGGED), (2,), (2,), {}),
        CitationCheck(last, len(ANSWER), (1,), (), {1: ("Marta signed it.",)}),
    )


def _underlined(html: str) -> list[tuple[str, QTextCharFormat]]:
    doc = QTextDocument()
    doc.setHtml(html)
    out = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            if frag.charFormat().fontUnderline():
                out.append((frag.text(), frag.charFormat()))
            it += 1
        block = block.next()
    return out


# ----------------------------------------------------------------------------- rendering
def test_unsupported_sentence_underlined_with_note():
    flags = [(ANSWER.index(FLAGGED), ANSWER.index(FLAGGED) + len(FLAGGED), "not found in source 2")]
    html = to_html(ANSWER, "#0000ff", flags)
    marked = _underlined(html)
    text = "".join(t for t, _f in marked)
    assert text.startswith("It was approved by the mayor of Paris")
    assert "48,000" not in text and "Marta" not in text
    fmt = marked[0][1]
    assert fmt.underlineColor().name() == FLAG_COLOR
    assert fmt.background().color().red() == 192 and fmt.background().color().alpha() < 60
    plain = QTextDocument()
    plain.setHtml(html)
    words = plain.toPlainText()
    # The note follows the flagged sentence, before the next one; citations stay links.
    assert words.index("Paris") < words.index("not found in source 2") < words.index("Marta")
    assert html.count('href="source:') == 3


def test_flag_in_a_list_keeps_the_list():
    text = "Facts:\n\n- First fact [1].\n- Second fact [2].\n"
    start = text.index("- Second")
    html = to_html(text, None, [(start, text.index(".\n", start) + 1, "not found in source 2")])
    assert html.count("<li>") == 2
    assert "- Second" not in html


def test_answer_without_flags_renders_as_before():
    assert to_html("A **bold** claim [1].") == to_html("A **bold** claim [1].", None, [])
    assert "\ue000" not in to_html("odd \ue000 char [1]", None, [(0, 3, "x")])


# ----------------------------------------------------------------------------- the window
class _Asked:
    """A question asked through the real chat controller, its answer played event by event
    (the controller's lane is scripted: no model), into the real chat view and history."""

    def __init__(self, chat: ChatView, history: ChatHistory, question: str) -> None:
        self.lane = ScriptedLane()
        conversations = ConversationsView()
        self.controller = ChatController(
            SimpleNamespace(history=history), self.lane, chat, conversations
        )
        self.controller.ask(question)
        self.conv = self.controller.conversation
        self.job = self.lane.jobs[0]

    def send(self, event) -> None:
        self.lane.play(self.job, event)


@pytest.fixture
def history(tmp_path):
    h = ChatHistory(tmp_path / "chats.sqlite3")
    yield h
    h.close()


def _stats(reason="eog") -> GenerationStats:
    return GenerationStats(model="SmolLM2", tokens_per_s=20.0, stop_reason=reason)


def test_checked_answer_marks_and_persists(qtbot, history, shots):
    chat = ChatView()
    qtbot.addWidget(chat)
    chat.resize(900, 700)
    chat.show()
    lane = _Asked(chat, history, "Who approved the Zephyr budget?")
    conv = lane.conv
    lane.send(SourcesFound(_sources(), answerable=True))
    lane.send(TextPiece(ANSWER))
    lane.send(AnswerDone(ANSWER, _stats(), _sources(), _checks()))
    bubble = chat.bubbles[-1]
    qtbot.waitUntil(bubble.isVisible)
    assert bubble.flagged() == [
        (ANSWER.index(FLAGGED), ANSWER.index(FLAGGED) + len(FLAGGED), "not found in source 2")
    ]
    assert "not found in source 2" in bubble.label.text()
    assert "1 sentence not found in its source" in bubble.stats.text()
    # The viewer gets each source's supporting sentences.
    opened = []
    bubble.source_clicked.connect(opened.append)
    first = next(b for b in bubble.findChildren(SourceButton) if b.source["n"] == 1)
    qtbot.mouseClick(first, Qt.MouseButton.LeftButton)
    assert opened[-1]["support"] == ["The Zephyr budget is 48,000 euros.", "Marta signed it."]
    bubble.grab().save(str(shots / "12-answer-unsupported-sentence.png"))

    stored = history.messages(conv)[-1]
    assert stored.stats["answerable"] is True
    assert stored.stats["checks"][1]["unsupported"] == [2]
    again = ChatView()
    qtbot.addWidget(again)
    reopened = again.add_answer(stored.text, stored.sources, stored.stats)
    assert reopened.flagged() == bubble.flagged()
    assert reopened.label.text() == bubble.label.text()
    assert reopened.sources[0]["support"] == opened[-1]["support"]


def test_unanswerable_question_folds_closest_passages(qtbot, history, shots):
    chat = ChatView()
    qtbot.addWidget(chat)
    chat.resize(900, 700)
    chat.show()
    lane = _Asked(chat, history, "What is the capital of France?")
    conv = lane.conv
    lane.send(SourcesFound(_sources(), answerable=False))
    lane.send(AnswerDone("", _stats("not_answerable"), _sources()))
    bubble = chat.bubbles[-1]
    qtbot.waitUntil(bubble.isVisible)  # the layout shows a new bubble at the next event turn
    assert bubble.text == NOT_ANSWERED
    assert bubble.sources == []  # not citations: [1] in any text opens nothing
    toggle = bubble.closest_toggle
    assert toggle is not None and toggle.text() == CLOSEST_LABEL
    assert not toggle.isChecked() and bubble.closest_box.isHidden()
    headings = [w.text() for w in bubble.findChildren(type(bubble.stats))]
    assert "Sources" not in headings
    buttons = bubble.closest_box.findChildren(SourceButton)
    assert len(buttons) == 2 and not buttons[0].text().startswith("[1]")
    bubble.grab().save(str(shots / "13-not-answerable-folded.png"))
    qtbot.mouseClick(toggle, Qt.MouseButton.LeftButton)
    assert toggle.isChecked() and bubble.closest_box.isVisible()
    bubble.grab().save(str(shots / "14-not-answerable-open.png"))
    assert bubble.stats.text() == "Not answered from your documents"

    stored = history.messages(conv)[-1]
    assert stored.stats["answerable"] is False
    again = ChatView()
    qtbot.addWidget(again)
    reopened = again.add_answer(stored.text, stored.sources, stored.stats)
    assert reopened.closest_toggle is not None and reopened.sources == []
    assert reopened.text == NOT_ANSWERED


def test_answerable_sources_stay_citations(qtbot):
    bubble = MessageBubble("assistant")
    qtbot.addWidget(bubble)
    bubble.set_sources([{"n": 1, "path": "/d/a.pdf", "page": 1, "text": "x"}], True)
    assert bubble.closest_toggle is None and len(bubble.sources) == 1


def test_a_source_button_quotes_a_hostile_passage_without_obeying_it(qtbot):
    """A passage's bidi override or escape sequence is shown as an escape on the source's
    button, not obeyed (it would reorder the window's own words)."""
    from app.gui.chat_view import SourceButton

    button = SourceButton(
        {"n": 1, "path": "/docs/invoice.pdf", "page": 2, "text": "Total \u202e0001$ due\x1b[2J"}
    )
    qtbot.addWidget(button)
    shown = button.text() + button.accessibleDescription()
    assert "\u202e" not in shown and "\x1b" not in shown
    assert "\\u202e" in button.accessibleDescription()
