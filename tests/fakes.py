"""Fakes for fast unit tests of the logic around the models (the real tiny models are tested
elsewhere, end to end). Each fits the Protocol in app/core/ports.py it stands in for."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.cancel import Cancelled
from app.core.events import Hit
from app.core.llm import Generated, LoadReport


class QueuedEngine:
    """A chat model with queued replies (as simonw/llm's MockModel): one word = one token,
    text is 'neutralised' by marking it, and every prompt and message list is recorded."""

    def __init__(self, *replies: str, n_ctx: int = 2048) -> None:
        self.replies = list(replies)
        self.n_ctx = n_ctx
        self.prompts: list[str] = []
        self.rendered: list[list[dict]] = []
        self.neutralized: list[str] = []
        self.loaded = False

    def load(self) -> LoadReport:
        self.loaded = True
        return LoadReport("fake", "fake.gguf", 0.0, 0, 1, "CPU", self.n_ctx, ())

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def neutralize(self, text: str) -> str:
        self.neutralized.append(text)
        return text.replace("<|im_end|>", "<​|im_end|>")

    def render(self, messages: list[dict], cancel=None) -> str:
        self.rendered.append(messages)
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages)

    def generate(self, prompt, cancel, max_tokens=512, temperature=0.2):
        if cancel.cancelled:
            raise Cancelled()
        self.prompts.append(prompt)
        reply = self.replies.pop(0) if self.replies else ""
        words = reply.split(" ") if reply else []
        produced = 0
        for word in words[:max_tokens]:
            if cancel.cancelled:
                yield Generated(len(prompt.split()), produced, 1.0, 1.0, 10.0, "cancelled")
                return
            produced += 1
            yield word + " "
        reason = "eog" if produced == len(words) else "length"
        yield Generated(len(prompt.split()), produced, 1.0, 1.0, 10.0, reason)

    def close(self) -> None:
        self.loaded = False


@dataclass
class _Verdict:
    answerable: bool
    closeness: float = 0.0
    support: float = 0.0


class _NoEmbedder:
    model_id = "none"

    def embed_aside(self, texts):
        raise RuntimeError("no embedder in this test")  # the citation check then passes


class ListRetriever:
    """A retriever over a fixed list of passages: search returns them all, best first; the gate
    says `answerable`."""

    def __init__(self, *texts: str, answerable: bool = True) -> None:
        self.hits = [
            Hit(f"c{i}", f"/docs/doc{i}.pdf", i + 1, text, 0.9 - i * 0.05)
            for i, text in enumerate(texts)
        ]
        self.answerable = answerable
        self.embedder = _NoEmbedder()
        self.searched: list[str] = []

    def search(self, question: str, k: int = 5) -> list[Hit]:
        self.searched.append(question)
        return self.hits[:k]

    def judge(self, question, hits) -> _Verdict:
        return _Verdict(self.answerable and bool(hits))

    def relevant(self, hits):
        return list(hits)
