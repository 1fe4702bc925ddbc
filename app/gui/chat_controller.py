"""The chat controller: conversations, and the answers being written in them.

It turns the user's gestures (ask, regenerate, stop, open or delete a chat) into jobs on the model
lane and the lane's events into calls on the chat view. Each answer's state is an `Answer`, kept
until its job ends, so an answer goes on being written (and stored in its own chat) when the user
switches to another chat, and shows again, still growing, when they come back. Answers run one
at a time (one model); a question asked in another chat meanwhile waits its turn and says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.chat import Turn
from app.core.events import (
    AnswerDone,
    AnswerFailed,
    AnswerStage,
    SourcesFound,
    TextPiece,
)
from app.gui.lanes import Job, ModelDropped, ModelFailed, ModelLoading, ModelReady

log = logging.getLogger(__name__)


def source_dict(src) -> dict:
    h = src.hit
    return {
        "n": src.n,
        "path": h.path,
        "page": h.page,
        "text": h.text,
        "start": h.start,
        "end": h.end,
        "score": h.score,
    }


def check_dict(check) -> dict:
    """A CitationCheck as JSON-friendly data (history stores it in the answer's stats)."""
    return {
        "start": check.start,
        "end": check.end,
        "cited": list(check.cited),
        "unsupported": list(check.unsupported),
        "support": {str(n): list(sentences) for n, sentences in check.support.items()},
    }


def with_support(sources: list[dict], checks: list[dict]) -> list[dict]:
    """The sources, each given the sentences of its passage that the check found backing the
    answer ("support"), for the viewer to highlight more strongly."""
    out = []
    for src in sources:
        support: list[str] = []
        for check in checks:
            for sentence in check.get("support", {}).get(str(src.get("n")), ()):
                if sentence not in support:
                    support.append(sentence)
        out.append({**src, "support": support} if support else dict(src))
    return out


def stats_dict(stats) -> dict:
    return {
        "model": stats.model,
        "ttft_ms": stats.ttft_ms,
        "tokens_per_s": stats.tokens_per_s,
        "completion_tokens": stats.completion_tokens,
        "gpu_layers": stats.gpu_layers,
        "stop_reason": stats.stop_reason,
    }


def turns_of(messages) -> list[Turn]:
    """The question/answer pairs of stored messages (errors left out), for follow-ups."""
    turns, question = [], None
    for m in messages:
        if m.role == "user":
            question = m.text
        elif question is not None and not m.stats.get("error"):
            turns.append(Turn(question, m.text))
            question = None
    return turns


def stage_text(answer: Answer, now: float | None = None) -> str:
    """What an answer with no words yet is doing, in words (with the seconds it has waited once
    they are worth counting)."""
    if answer.waiting_for is not None:
        return f"Waiting for the answer in “{answer.waiting_for}” to finish…"
    stage, n = answer.stage, answer.passages
    if stage == "loading":
        text = "Loading the model…"
    elif stage == "reading":
        text = (
            f"Reading {n} passage{'s' if n != 1 else ''} from your documents…" if n else "Thinking…"
        )
        if answer.total:
            text += f" {answer.done * 100 // answer.total}%"
    else:
        text = "Searching your documents…"
    waited = (time.monotonic() if now is None else now) - answer.stage_since
    if waited >= 3:
        text += f" {waited:.0f} s"
    return text


@dataclass(eq=False)
class Answer:
    """An answer from its question to its end: what the view needs to show it again."""

    conversation: int
    question: str
    job: Job | None = None
    stage: str = "searching"
    stage_since: float = field(default_factory=time.monotonic)
    passages: int = 0
    done: int = 0  # prompt tokens evaluated, of total (while reading)
    total: int = 0
    waiting_for: str | None = None  # the title of the chat whose answer this one waits on
    sources: list[dict] = field(default_factory=list)
    answerable: bool = True
    text: str = ""
    stored: bool = False  # its outcome (answer or error) is in the history
    forgotten: bool = False  # its chat was deleted: nothing is stored


class ChatController(QObject):
    """Owns the open conversation and the answers being written. Talks to the chat view and
    the conversations list it is given; signals what the window shows elsewhere."""

    model_status = Signal(str, str)  # text, tooltip
    busy_changed = Signal()

    def __init__(self, services, lane, chat, conversations, parent: QObject | None = None):
        super().__init__(parent)
        self.services = services
        self.lane = lane
        self.chat = chat
        self.conversations = conversations
        self.conversation: int | None = None
        self.answers: dict[int, Answer] = {}  # job id -> its answer, until the job ends
        self.model_name = ""  # as the status bar shows it (the file's name, not the GGUF's)
        self._closing = False
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._show_stage)
        lane.event.connect(self._event)
        lane.failed.connect(self._failed)
        lane.finished.connect(self._finished)
        conversations.search_changed.connect(self._search_changed)

    # ------------------------------------------------------------------ queries
    def answer_in(self, conv_id: int | None) -> Answer | None:
        """The live (running or waiting) answer of a conversation."""
        if conv_id is None:
            return None
        return next((a for a in self.answers.values() if a.conversation == conv_id), None)

    @property
    def current_answer(self) -> Answer | None:
        return self.answer_in(self.conversation)

    @property
    def busy(self) -> bool:
        """Whether the open chat has an answer on its way (Stop applies to it)."""
        return self.current_answer is not None

    def can_regenerate(self) -> bool:
        return not self.busy and any(b.role != "user" for b in self.chat.bubbles)

    def shut(self) -> None:
        """The window is closing: nothing more is drawn or stored from here on."""
        self._closing = True
        self._tick.stop()

    # ------------------------------------------------------------------ conversations
    def refresh_list(self) -> None:
        query = self.conversations.query()
        history = self.services.history
        listed = history.search(query) if query else history.conversations()
        answering = {a.conversation for a in self.answers.values() if not a.stored}
        self.conversations.set_conversations(listed, self.conversation, answering)

    def _search_changed(self, _query: str) -> None:
        self.refresh_list()

    def open(self, conv_id: int | None) -> None:
        """Show a conversation. An answer being written elsewhere carries on in its own chat."""
        if conv_id is not None and conv_id == self.conversation and self.chat.bubbles:
            return
        self.chat.flush()
        self.conversation = conv_id
        self.chat.clear()
        if conv_id is not None:
            for m in self.services.history.messages(conv_id):
                if m.role == "user":
                    self.chat.add_user(m.text)
                elif m.stats.get("error"):
                    self.chat.add_error(m.text)
                else:
                    self.chat.add_answer(m.text, m.sources, m.stats)
        live = self.current_answer
        if live is not None and not live.stored:
            self.chat.begin_answer()
            if live.sources:
                self.chat.set_sources(live.sources, live.answerable)
            if live.text:
                self.chat.append_text(live.text)
                self.chat.flush()
            self._show_stage()
        self.refresh_list()
        self._update_busy()
        self.chat.input.setFocus()

    def new(self) -> None:
        """A blank chat; it is stored (and listed) once the first question is asked."""
        self.open(None)
        self.conversations.list.clearSelection()
        self.conversations.list.setCurrentItem(None)

    def title_of(self, conv_id: int) -> str:
        return next((c.title for c in self.services.history.conversations() if c.id == conv_id), "")

    def rename(self, conv_id: int, title: str) -> None:
        if title.strip():
            self.services.history.rename(conv_id, title)
            self.refresh_list()

    def delete(self, conv_id: int) -> None:
        live = self.answer_in(conv_id)
        if live is not None:
            live.forgotten = True
            if live.job is not None:
                live.job.cancel.cancel()
        self.services.history.delete(conv_id)
        if conv_id == self.conversation:
            self.conversation = None
            self.chat.clear()
        self.refresh_list()
        self._update_busy()

    # ------------------------------------------------------------------ asking
    def ask(self, question: str) -> Answer | None:
        question = question.strip()
        if not question or self.busy:
            return None
        history = self.services.history
        if self.conversation is None:
            title = " ".join(question.split())
            title = title if len(title) <= 48 else title[:47].rsplit(" ", 1)[0] + "…"
            self.conversation = history.create(title).id
            self.refresh_list()
        turns = turns_of(history.messages(self.conversation))
        history.add(self.conversation, "user", question)
        self.chat.add_user(question)
        return self._start(question, turns)

    def regenerate(self) -> Answer | None:
        if self.busy or self.conversation is None:
            return None
        history = self.services.history
        messages = history.messages(self.conversation)
        while messages and messages[-1].role == "assistant":
            history.delete_message(messages.pop().id)
        if not messages:
            return None
        self.chat.drop_last_answer()
        return self._start(messages[-1].text, turns_of(messages[:-1]))

    def _start(self, question: str, turns: list[Turn]) -> Answer:
        answer = Answer(self.conversation, question)
        ahead = next(iter(self.answers.values()), None)  # the one being written, if any
        if ahead is not None:
            answer.waiting_for = self.title_of(ahead.conversation) or "another chat"
        answer.job = self.lane.ask(question, turns, conversation=self.conversation)
        self.answers[answer.job.id] = answer
        self.chat.begin_answer()
        self._show_stage()
        self._update_busy()
        self.refresh_list()
        return answer

    def stop(self) -> None:
        """Stop the open chat's answer (or take its question out of the queue)."""
        live = self.current_answer
        if live is not None and live.job is not None:
            live.job.cancel.cancel()

    # ------------------------------------------------------------------ lane events
    def _event(self, job: Job, event) -> None:
        if self._closing:
            return
        if isinstance(event, ModelLoading):
            self.model_status.emit("Loading model…", "")
        elif isinstance(event, ModelReady):
            self.model_name = event.model
            self.model_status.emit(f"{event.model} · {event.where}", event.warning or "")
        elif isinstance(event, ModelFailed):
            self.model_status.emit("No model loaded", event.message)
        elif isinstance(event, ModelDropped):
            self.model_status.emit("Model loads with the first question", "")
        elif job.id in self.answers:
            self._answer_event(self.answers[job.id], event)

    def _visible(self, answer: Answer) -> bool:
        return answer.conversation == self.conversation and not answer.forgotten

    def _answer_event(self, answer: Answer, event) -> None:
        if answer.waiting_for is not None:
            answer.waiting_for = None
            answer.stage_since = time.monotonic()
        visible = self._visible(answer)
        if isinstance(event, AnswerStage):
            if event.stage != answer.stage:
                answer.stage_since = time.monotonic()
            answer.stage, answer.passages = event.stage, event.passages
            answer.done, answer.total = event.done, event.total
            if visible:
                self._show_stage()
        elif isinstance(event, SourcesFound):
            answer.sources = [source_dict(s) for s in event.sources]
            answer.answerable = event.answerable
            if visible:
                self.chat.set_sources(answer.sources, event.answerable)
        elif isinstance(event, TextPiece):
            answer.text += event.text
            if visible:
                self.chat.append_text(event.text)
        elif isinstance(event, AnswerDone):
            checks = [check_dict(c) for c in event.checks]
            sources = [source_dict(s) for s in event.sources] or answer.sources
            sources = with_support(sources, checks)
            stats = stats_dict(event.stats)
            if stats["model"] and self.model_name:
                stats["model"] = self.model_name
            # The gate's and the check's verdicts ride in the stats, so a reopened chat shows
            # them again (the history's schema is unchanged).
            stats["answerable"] = answer.answerable and event.stats.stop_reason != "not_answerable"
            stats["checks"] = checks
            self._store(answer, event.answer, sources, stats)
            if visible:
                self.chat.finish_answer(event.answer, stats, sources)
        elif isinstance(event, AnswerFailed):
            self._fail(answer, event.message)

    def _store(self, answer: Answer, text: str, sources: list[dict], stats: dict) -> None:
        answer.stored = True
        if answer.forgotten:
            return
        try:
            self.services.history.add(answer.conversation, "assistant", text, sources, stats)
        except Exception:  # the chat went meanwhile, or the disk is full: the view still shows it
            log.exception("could not store the answer")

    def _fail(self, answer: Answer, message: str) -> None:
        self._store(answer, message, [], {"error": True})
        if self._visible(answer):
            self.chat.fail_answer(message)

    def _failed(self, job: Job, message: str) -> None:
        if self._closing:
            return
        if job.id in self.answers:
            self._fail(self.answers[job.id], f"The answer stopped with an error: {message}")
        elif job.kind != "ask":
            self.model_status.emit("No model loaded", message)

    def _finished(self, job: Job) -> None:
        answer = self.answers.pop(job.id, None)
        if self._closing or answer is None:
            return
        if not answer.stored and self._visible(answer):
            # Stopped before it began: a question that never ran says so plainly.
            self.chat.finish_answer("", {"stop_reason": "cancelled"})
        self._update_busy()
        self.refresh_list()

    # ------------------------------------------------------------------ view
    def _show_stage(self) -> None:
        live = self.current_answer
        if live is not None and not live.text and self.chat.current is not None:
            self.chat.current.set_stage(stage_text(live))
        waiting = any(not a.text and not a.stored for a in self.answers.values())
        if waiting and not self._tick.isActive():
            self._tick.start()
        elif not waiting:
            self._tick.stop()

    def _update_busy(self) -> None:
        self.chat.set_busy(self.busy)
        self.busy_changed.emit()
