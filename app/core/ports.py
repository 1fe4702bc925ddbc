"""The shapes the chat session and the retriever rely on, as Protocols: what a chat model, an
embedder and a vector collection must offer. The real ones (LlamaEngine / EngineProcess,
Embedder, Chroma's collection through vector_store.py) and the test fakes (tests/fakes.py) both
fit them; a team-mode server client fits them too. Type checkers hold everyone to the same
surface; nothing here runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from app.core.cancel import CancelToken


@runtime_checkable
class ChatEngine(Protocol):
    """A chat model: counts and defuses text in its own tokens, renders a conversation in its
    chat format, streams an answer (text pieces, then one Generated with the figures)."""

    n_ctx: int | None

    @property
    def loaded(self) -> bool: ...

    def load(self): ...  # -> LoadReport

    def count_tokens(self, text: str) -> int: ...

    def neutralize(self, text: str) -> str: ...

    def render(self, messages: list[dict[str, str]], cancel: CancelToken | None = None) -> str: ...

    def generate(
        self, prompt: str, cancel: CancelToken, max_tokens: int = 512, temperature: float = 0.2
    ) -> Iterator: ...  # str pieces, then a Generated

    def close(self) -> None: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """Text to unit vectors; `model_id` names the vectors' space (a library keeps one)."""

    model_id: str

    def load(self) -> None: ...

    def embed(self, texts: Sequence[str]): ...  # -> numpy array, one row per text

    def embed_query(self, text: str): ...

    def embed_aside(self, texts: Sequence[str]): ...  # off the ingest lane (citation check)


@runtime_checkable
class VectorCollection(Protocol):
    """The part of a Chroma collection the library uses."""

    def upsert(self, ids, embeddings, metadatas=None, documents=None) -> None: ...

    def query(self, query_embeddings, n_results: int, where=None, include=None) -> dict: ...

    def get(self, ids=None, where=None, include=None) -> dict: ...

    def delete(self, ids=None, where=None) -> None: ...

    def count(self) -> int: ...
