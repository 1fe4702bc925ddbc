"""The chat controller's logic, with the real views and a real chat history, and a stand-in for
the model lane that the test drives event by event (no model: each test runs in moments).

The end-to-end path with the real model is tested in test_window.py and test_chat_switching.py.
"""

from __future__ import annotations

from app.core.events import (
    AnswerDone,
    AnswerStage,
    GenerationStats,
    Hit,
    Source,
    SourcesFound,
    TextPiece,
)
from app.core.history import ChatHistory
from app.gui.chat_controller import Answer, ChatController, stage_text
from app.gui.chat_view import ChatView
from app.gui.conversations_view import ConversationsView
from tests.gui.helpers import ScriptedLane


class Services:
    def __init__(self, history) -> None:
        self.history = history


def _controller(qtbot, tmp_path):
    history = ChatHistory(tmp_path / "chats.sqlite3")
    chat, conversations = ChatView(), ConversationsView()
    qtbot.addWidget(chat)
    qtbot.addWidget(conversations)
    lane = ScriptedLane()
    controller = ChatController(Services(history), lane, chat, conversations)
    return controller, lane, history, chat


def _done(text: str, reason: str = "eog") -> AnswerDone:
    return AnswerDone(text, GenerationStats(model="m", stop_reason=reason))


def test_an_answer_goes_on_in_its_own_chat_when_another_is_opened(qtbot, tmp_path):
    controller, lane, history, chat = _controller(qtbot, tmp_path)
    controller.ask("First question about the budget?")
    first = controller.conversation
    job = lane.jobs[0]
    hit = Hit("c1", "/docs/budget.pdf", 3, "The budget is 40,000 euros.", 0.9)
    lane.play(job, SourcesFound((Source(1, hit),)), TextPiece("The budget "))

    controller.new()  # the user opens a new chat while the answer is being written
    assert controller.conversation is None and not chat.bubbles
    assert not job.cancel.cancelled, "switching chats must not stop the answer"
    assert not controller.busy  # the new chat has nothing on its way: Send, not Stop
    lane.play(job, TextPiece("is 40,000 euros [1]."))

    controller.open(first)  # back: the answer so far, still growing
    assert [b.role for b in chat.bubbles] == ["user", "assistant"]
    chat.flush()
    assert chat.bubbles[-1].text == "The budget is 40,000 euros [1]."
    assert chat.bubbles[-1].sources[0]["page"] == 3
    assert controller.busy and chat.busy

    controller.new()
    lane.play(job, _done("The budget is 40,000 euros [1]."))
    lane.end(job)
    stored = history.messages(first)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].text == "The budget is 40,000 euros [1]."
    assert stored[1].stats["stop_reason"] == "eog"
    assert stored[1].sources[0]["path"] == "/docs/budget.pdf"
    assert not chat.bubbles  # nothing of it was drawn into the chat on screen


def test_a_question_in_another_chat_waits_its_turn_and_says_so(qtbot, tmp_path):
    controller, lane, history, chat = _controller(qtbot, tmp_path)
    controller.ask("Where is the Zephyr office?")
    first_title = history.conversations()[0].title
    running = lane.jobs[0]
    controller.new()
    controller.ask("Who signed the lease?")
    second = controller.conversation
    waiting = lane.jobs[1]
    assert "Waiting for the answer in “" + first_title in chat.bubbles[-1].label.text()

    controller.stop()  # Stop in the second chat stops its own question, not the first
    assert waiting.cancel.cancelled and not running.cancel.cancelled
    lane.end(waiting)  # a cancelled job that never ran only ends
    assert "Stopped before any answer" in chat.bubbles[-1].label.text()
    assert [m.role for m in history.messages(second)] == ["user"]
    assert not controller.busy


def test_stages_before_the_first_word(qtbot, tmp_path):
    controller, lane, _history, chat = _controller(qtbot, tmp_path)
    controller.ask("What does clause 7 say?")
    job = lane.jobs[0]
    bubble = chat.bubbles[-1]
    assert "Searching your documents" in bubble.label.text()
    lane.play(job, AnswerStage("loading"))
    assert "Loading the model" in bubble.label.text()
    lane.play(job, AnswerStage("reading", passages=4))
    assert "Reading 4 passages from your documents" in bubble.label.text()
    lane.play(job, TextPiece("Clause 7"))
    chat.flush()
    assert bubble.text == "Clause 7" and "Reading" not in bubble.label.text()


def test_stage_text_counts_seconds_once_they_matter():
    answer = Answer(conversation=1, question="q", stage="reading", passages=1)
    assert stage_text(answer, now=answer.stage_since + 1) == (
        "Reading 1 passage from your documents…"
    )
    assert stage_text(answer, now=answer.stage_since + 14.2).endswith("… 14 s")


def test_deleting_a_chat_cancels_its_answer_and_stores_nothing(qtbot, tmp_path):
    controller, lane, history, chat = _controller(qtbot, tmp_path)
    controller.ask("A question?")
    conv = controller.conversation
    job = lane.jobs[0]
    controller.delete(conv)
    assert job.cancel.cancelled
    lane.play(job, _done("", "cancelled"))  # the model's last word after the cancel
    lane.end(job)
    assert history.conversations() == []
    assert not controller.answers and not chat.bubbles


def test_search_narrows_the_chats_list_as_the_user_types(qtbot, tmp_path):
    controller, _lane, history, _chat = _controller(qtbot, tmp_path)
    lease = history.create("Office lease")
    history.add(lease.id, "user", "When does the lease end?")
    budget = history.create("Budget")
    history.add(budget.id, "assistant", "The Zephyr budget is 40,000 euros.")
    controller.refresh_list()
    view = controller.conversations
    assert view.titles() == ["Budget", "Office lease"]

    qtbot.keyClicks(view.search, "zephyr")
    qtbot.waitUntil(lambda: view.titles() == ["Budget"], timeout=2000)
    view.search.setText("nothing like this")
    qtbot.waitUntil(lambda: view.titles() == [], timeout=2000)
    assert not view.empty_search.isHidden()
    view.search.clear()
    qtbot.waitUntil(lambda: len(view.titles()) == 2, timeout=2000)
    assert view.empty_search.isHidden()


def test_a_chat_with_an_answer_on_its_way_says_so_in_the_list(qtbot, tmp_path):
    controller, lane, _history, _chat = _controller(qtbot, tmp_path)
    controller.ask("Who signed the lease?")
    job = lane.jobs[0]
    view = controller.conversations
    assert view.list.item(0).text().endswith("· answering…")
    assert view.titles() == ["Who signed the lease?"]  # the title itself is unchanged
    lane.play(job, _done("Ms Moreau signed it."))
    lane.end(job)
    assert view.list.item(0).text() == "Who signed the lease?"


def test_tokens_are_painted_once_per_frame_not_once_each(qtbot, tmp_path):
    """Forty pieces arriving within one frame are one paint; the next frame's pieces another."""
    controller, lane, _history, chat = _controller(qtbot, tmp_path)
    controller.ask("Tell me about the lease.")
    job = lane.jobs[0]
    before = chat.flushes
    lane.play(job, *(TextPiece(f"word{i} ") for i in range(40)))
    assert chat.flushes == before  # nothing painted yet: the frame timer has not fired
    qtbot.waitUntil(lambda: chat.flushes == before + 1, timeout=1000)
    assert chat.bubbles[-1].text == "".join(f"word{i} " for i in range(40))
    lane.play(job, TextPiece("more."))
    qtbot.waitUntil(lambda: chat.flushes == before + 2, timeout=1000)
    qtbot.wait(100)
    assert chat.flushes == before + 2


def test_a_long_prompt_says_how_far_its_reading_has_got(qtbot, tmp_path):
    controller, lane, _history, chat = _controller(qtbot, tmp_path)
    controller.ask("Summarise the manual.")
    job = lane.jobs[0]
    lane.play(job, AnswerStage("reading", passages=5))
    assert chat.bubbles[-1].label.text().endswith("Reading 5 passages from your documents…</i>")
    lane.play(job, AnswerStage("reading", 5, 1024, 4096))
    assert "Reading 5 passages from your documents… 25%" in chat.bubbles[-1].label.text()
