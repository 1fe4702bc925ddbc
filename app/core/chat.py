"""ChatSession.ask(question, cancel) -> sources first, then text pieces, then done (or failed).

Retrieval runs before the model is touched, so a question whose answer is not in the library is
answered "not found" at once, and search keeps working when no model can be loaded.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from app.config import Settings
from app.core.cancel import Cancelled, CancelToken
from app.core.citecheck import check_citations
from app.core.events import (
    AnswerDone,
    AnswerFailed,
    AnswerStage,
    ChatEvent,
    CitationCheck,
    GenerationStats,
    Source,
    SourcesFound,
    TextPiece,
)
from app.core.gguf_check import ModelFileError
from app.core.llm import Generated, LlamaEngine, Prefill, PromptTooLong
from app.core.prompt import NOT_FOUND, assemble, system_prompt
from app.core.retrieval import Retriever

log = logging.getLogger(__name__)


def _takes(function, name: str) -> bool:
    """Whether `function` has a parameter `name` (engines that report prefill progress)."""
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Turn:
    """An earlier question and its answer, for follow-up questions."""

    question: str
    answer: str


class ChatSession:
    def __init__(
        self, retriever: Retriever, engine: Callable[[], LlamaEngine], settings: Settings
    ) -> None:
        self.retriever = retriever
        self._engine = engine
        self.settings = settings

    def ask(
        self, question: str, cancel: CancelToken, history: Sequence[Turn] = ()
    ) -> Iterator[ChatEvent]:
        started = time.perf_counter()
        question = question.strip()
        if not question:
            yield AnswerFailed("Type a question first.")
            return
        yield AnswerStage("searching")
        try:
            found = self.retriever.search(question, k=max(1, self.settings.sources) * 2)
            verdict = self.retriever.judge(question, found)
        except Exception as exc:  # the library is unreadable: say so, do not crash the lane
            yield AnswerFailed(f"Searching your documents failed: {exc}")
            return
        strict = self.settings.only_from_documents
        hits = self.retriever.relevant(found) if verdict.answerable else []
        if not hits:
            # The documents do not answer it: the closest passages are shown for what they are
            # (not matching), never handed to the model as sources it could cite.
            closest = tuple(
                Source(n, h) for n, h in enumerate(found[: self.settings.sources], start=1)
            )
            yield SourcesFound(closest, answerable=False)
            if strict:
                yield TextPiece(NOT_FOUND)
                reason = "not_answerable" if closest else "no_sources"
                yield AnswerDone(NOT_FOUND, GenerationStats(model="", stop_reason=reason), closest)
                return
        try:
            engine = self._engine()
            if not getattr(engine, "loaded", True):
                yield AnswerStage("loading")
            report = engine.load()
        except ModelFileError as exc:
            yield AnswerFailed(str(exc))
            return
        except Exception as exc:
            yield AnswerFailed(f"The model could not be loaded: {exc}")
            return

        # Counting, defusing and packing happen where the tokenizer is: one call to the model's
        # process (engines without assemble(), such as the test fakes, run it here).
        args = (
            system_prompt(strict),
            question,
            list(history),
            hits,
            self.settings.max_answer_tokens,
            self.settings.sources,
        )
        if hasattr(engine, "assemble"):
            messages, packed = engine.assemble(*args)
        else:
            messages, packed = assemble(engine, *args)
        sources = tuple(Source(n, h) for n, h in enumerate(packed, start=1))
        if hits:
            yield SourcesFound(sources)
        pieces: list[str] = []
        first_token_at = None
        try:
            # Inside the try: Stop ends a slow chat template (it runs bounded, in a process
            # of its own: app/core/chat_template.py) as it ends the prompt's evaluation.
            prompt = engine.render(messages, cancel)
            yield AnswerStage("reading", passages=len(sources))
            progress = {"progress": True} if _takes(engine.generate, "progress") else {}
            for item in engine.generate(
                prompt,
                cancel,
                self.settings.max_answer_tokens,
                self.settings.temperature,
                **progress,
            ):
                if isinstance(item, Generated):
                    final = item
                    break
                if isinstance(item, Prefill):
                    yield AnswerStage("reading", len(sources), item.done, item.total)
                    continue
                if first_token_at is None:
                    first_token_at = time.perf_counter()
                pieces.append(item)
                yield TextPiece(item)
        except Cancelled:
            final = Generated(0, 0, 0.0, 0.0, 0.0, "cancelled")
        except PromptTooLong as exc:
            yield AnswerFailed(
                f"{exc} In Settings, lower 'Passages per answer' or, under Advanced, raise "
                "'Text read at once'."
            )
            return
        except Exception as exc:
            yield AnswerFailed(f"The model stopped with an error: {exc}")
            return
        ttft = ((first_token_at or time.perf_counter()) - started) * 1000
        stats = GenerationStats(
            model=report.model,
            load_s=report.load_s,
            prompt_tokens=final.prompt_tokens,
            completion_tokens=final.completion_tokens,
            ttft_ms=round(ttft, 1),
            tokens_per_s=round(final.tokens_per_s, 1),
            gpu_layers=report.gpu_layers,
            stop_reason=final.stop_reason,
        )
        answer = "".join(pieces)
        yield AnswerDone(answer, stats, sources, self._check(answer, sources))

    def _check(self, answer: str, sources: Sequence[Source]) -> tuple[CitationCheck, ...]:
        """Each citing sentence checked against the passages it cites (app/core/citecheck.py);
        a check that fails costs its marks, never the answer."""
        if not sources or "[" not in answer:
            return ()
        try:
            return check_citations(answer, sources, self.retriever.embedder.embed_aside)
        except Exception:
            log.exception("the citation check failed")
            return ()
