"""ChatSession: the relevance gate and the citation check in the answer flow.

The library, retrieval, gate and citation check are real (MiniLM, Chroma in tmp); the chat
model is a fake with a queued reply, so the test is about what the session does with it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.config import Settings
from app.core.cancel import CancelToken
from app.core.chat import ChatSession
from app.core.events import AnswerDone, SourcesFound, TextPiece
from app.core.gate import RelevanceGate, load_probes
from app.core.llm import Generated, LoadReport
from app.core.prompt import NOT_FOUND
from app.core.retrieval import Retriever
from app.paths import resources_dir
from tests.core.test_gate import handbook_library


class QueuedEngine:
    """Answers with the next queued reply; records the prompts it was given."""

    n_ctx = 2048

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []

    def load(self) -> LoadReport:
        return LoadReport("fake", "fake.gguf", 0.0, 0, 1, "CPU", self.n_ctx, ())

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def neutralize(self, text: str) -> str:
        return text

    def render(self, messages: list[dict], cancel=None) -> str:
        return "\n".join(m["content"] for m in messages)

    def generate(self, prompt, cancel, max_tokens, temperature):
        self.prompts.append(prompt)
        reply = self.replies.pop(0)
        for word in reply.split(" "):
            yield word + " "
        yield Generated(len(prompt.split()), len(reply.split()), 1.0, 1.0, 10.0, "eog")


@pytest.fixture(scope="module")
def retriever(tmp_path_factory, embedder):
    library = handbook_library(tmp_path_factory.mktemp("chat"), embedder)
    probes = load_probes(resources_dir() / "gate" / "probes.txt")
    gate = RelevanceGate(library, embedder.embed, embedder.model_id, probes)
    # No floor under single passages: in a library this small every off-topic passage falls
    # under the default one, and the test is about the gate's decision.
    yield Retriever(library, embedder, min_similarity=0.0, gate=gate)
    library.close()


def _ask(retriever, engine, question, **settings):
    session = ChatSession(retriever, lambda: engine, replace(Settings(), **settings))
    return list(session.ask(question, CancelToken()))


def test_an_off_topic_question_is_refused_without_the_model_and_without_citations(retriever):
    engine = QueuedEngine("Paris.")
    events = _ask(retriever, engine, "What is the capital of France?")
    found = [e for e in events if isinstance(e, SourcesFound)]
    assert len(found) == 1 and found[0].answerable is False and found[0].sources
    done = events[-1]
    assert isinstance(done, AnswerDone) and done.answer == NOT_FOUND
    assert done.stats.stop_reason == "not_answerable" and not done.checks
    assert engine.prompts == []  # the model was never asked


def test_an_off_topic_question_in_relaxed_mode_gets_no_sources_to_cite(retriever):
    engine = QueuedEngine("The capital of France is Paris.")
    events = _ask(retriever, engine, "What is the capital of France?", only_from_documents=False)
    assert [e.answerable for e in events if isinstance(e, SourcesFound)] == [False]
    assert "<source id=" not in engine.prompts[0]  # answered from general knowledge, uncited
    assert isinstance(events[-1], AnswerDone) and events[-1].sources == ()


def test_an_answer_carries_a_check_of_each_citing_sentence(retriever):
    engine = QueuedEngine(
        "New employees get 27 days of paid annual leave [1]. "
        "The meal allowance is 90 euros a day [1]."
    )
    events = _ask(retriever, engine, "How many days of annual leave do I get?", sources=1)
    found = [e for e in events if isinstance(e, SourcesFound)]
    assert found[0].answerable and "27 days" in found[0].sources[0].hit.text
    assert "<source id=" in engine.prompts[0]
    assert "".join(e.text for e in events if isinstance(e, TextPiece)).strip()
    done = events[-1]
    assert isinstance(done, AnswerDone)
    first, second = done.checks
    assert done.answer[first.start : first.end].startswith("New employees get 27 days")
    assert first.cited == (1,) and first.unsupported == ()
    assert second.cited == (1,) and second.unsupported == (1,)  # 90 euros is not in source 1
