"""The composition root: builds every service once, lazily, and hands them out.

The CLI and the window both start here; tests build a Services over a tmp data dir with the real
tiny models, or pass their own factories for the engine, the embedder and the library (the
shapes in app/core/ports.py; fakes in tests/fakes.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from app.config import Settings, embedder_path, isolate_from_network, llm_path, load_settings
from app.core.chat import ChatSession
from app.core.embedding import Embedder
from app.core.gate import RelevanceGate, load_probes
from app.core.gguf_check import ModelFileError
from app.core.history import ChatHistory
from app.core.ingest import IngestOptions, Ingestor
from app.core.ingest_queue import IngestQueue
from app.core.library import Library
from app.core.llm import LlamaEngine
from app.core.llm_process import EngineProcess
from app.core.ports import TextEmbedder
from app.core.retrieval import Retriever
from app.core.store_health import HealthReport, check
from app.paths import resources_dir


class NoModelConfigured(ModelFileError):
    pass


class Services:
    def __init__(
        self,
        home: Path,
        settings: Settings | None = None,
        *,
        model_override: str | None = None,
        engine_factory: Callable[[Settings], LlamaEngine | EngineProcess] | None = None,
        embedder_factory: Callable[[Path], TextEmbedder] | None = None,
        library_factory: Callable[[Path, Settings], Library] | None = None,
    ) -> None:
        """Each factory replaces how that part is made, on first use: the engine from the
        settings, the embedder from its model folder (again after a change of folder), the
        library from the data dir and the settings (again after a switch to or from team mode)."""
        isolate_from_network()
        self.home = Path(home)
        self.settings = settings or load_settings(self.home)
        self.model_override = model_override
        self._engine_factory = engine_factory
        self._embedder_factory = embedder_factory
        self._library_factory = library_factory
        self._lock = threading.RLock()
        self._library: Library | None = None
        self._embedder: TextEmbedder | None = None
        self._engine: LlamaEngine | EngineProcess | None = None
        self._history: ChatHistory | None = None
        self._gate: RelevanceGate | None = None
        self._found_sound = False  # health() just read the library's files: none is damaged
        self._ingest_queue = IngestQueue(self.home)  # the Ingestors' (ingest.py), survives a crash

    @property
    def library(self) -> Library:
        with self._lock:
            if self._library is None:
                if self._library_factory is not None:
                    self._library = self._library_factory(self.home, self.settings)
                elif self.settings.library_server:  # team mode: the local library is not opened
                    from app.core.team.library import library_for

                    self._library = library_for(self.home, self.settings)
                else:
                    # The window checks the stores before it opens (health()): not twice.
                    self._library = Library(self.home, checked=self._found_sound)
                    self._found_sound = False
            return self._library

    def health(self) -> HealthReport:
        """What is damaged in the library and the chats, from their files (Chroma is not
        started; see store_health.py). The window asks before it opens the library, and
        offers repair() when the report is not ok."""
        report = check(self.home)
        if self.settings.library_server:  # team mode: the local library is not in use
            report.library = []
        with self._lock:
            self._found_sound = self._library is None and not report.library
        return report

    def repair(self, cancel) -> Iterator:
        """Rebuild a damaged library from its documents' files, keeping chats and settings
        (repair.py): yields RepairStarted, the ingest events, RepairFinished. The library and
        the chats are closed first (their files may be moved aside) and open afresh after.
        Cancelling keeps what was rebuilt; the rest stays queued for the next run."""
        from app.core.repair import repair

        with self._lock:
            self._gate = None
            if self._library is not None:
                self._library.close()
                self._library = None
            if self._history is not None:
                self._history.close()
                self._history = None
        report = self.health()
        yield from repair(self.home, self.ingestor(), cancel, report)

    @property
    def embedder(self) -> TextEmbedder:
        with self._lock:
            if self._embedder is None:
                make = self._embedder_factory or Embedder
                self._embedder = make(embedder_path(self.settings))
            return self._embedder

    @property
    def history(self) -> ChatHistory:
        with self._lock:
            if self._history is None:
                self._history = ChatHistory(self.home / "chats.sqlite3")
            return self._history

    def retriever(self) -> Retriever:
        return Retriever(self.library, self.embedder, gate=self.gate)

    @property
    def gate(self) -> RelevanceGate:
        """The relevance gate of this library and embedder (its baseline is measured once and
        kept in the data directory)."""
        with self._lock:
            embedder = self.embedder
            if self._gate is None or self._gate.model_id != embedder.model_id:
                self._gate = RelevanceGate(
                    self.library,
                    embedder.embed,
                    embedder.model_id,
                    load_probes(resources_dir() / "gate" / "probes.txt"),
                    # team mode: the team library's baseline, kept beside its replica
                    cache=getattr(self.library, "replica_dir", self.home)
                    / "relevance-baseline.json",
                )
            return self._gate

    def ingestor(self) -> Ingestor:
        """An Ingestor for the current settings; the library and the embedder are opened when
        it first needs them (queueing or forgetting requests needs neither)."""
        s = self.settings
        return Ingestor(
            lambda: self.library,
            lambda: self.embedder,
            IngestOptions(chunk_tokens=s.chunk_tokens, chunk_overlap=s.chunk_overlap),
            self._ingest_queue,
        )

    def chat(self) -> ChatSession:
        return ChatSession(self.retriever(), self.engine, self.settings)

    def model_path(self) -> Path:
        path = (
            Path(self.model_override).expanduser()
            if self.model_override
            else llm_path(self.settings)
        )
        if path is None:
            raise NoModelConfigured(
                "No model is set and the embedded one is missing. Choose a .gguf file in Settings "
                "(or pass --model PATH), or reinstall Confidant."
            )
        return path

    def engine(self) -> LlamaEngine | EngineProcess:
        """The one engine, created on first use (not loaded: the lane that uses it loads it)."""
        with self._lock:
            if self._engine is None:
                if self._engine_factory is not None:
                    self._engine = self._engine_factory(self.settings)
                elif self.settings.llm_server and not self.model_override:
                    from app.core.team.endpoint import engine_for  # team mode: a model server

                    self._engine = engine_for(self.settings)
                else:
                    s = self.settings
                    # In a process of its own: see app/core/llm_process.py for why.
                    self._engine = EngineProcess(
                        self.model_path(), n_ctx=s.context_size, gpu_layers=s.gpu_layers
                    )
            return self._engine

    def apply_settings(self, settings: Settings) -> None:
        """Use new settings from now on; a changed embedding model is loaded afresh."""
        with self._lock:
            if embedder_path(settings) != embedder_path(self.settings):
                self._embedder = None
            if _library_keys(settings) != _library_keys(self.settings):  # team <-> local
                self._gate = None
                if self._library is not None:
                    self._library.close()
                    self._library = None
            self.settings = settings

    def drop_engine(self) -> None:
        """Forget the engine (after a settings change); the caller's lane must own it."""
        with self._lock:
            if self._engine is not None:
                self._engine.close()
                self._engine = None

    def close(self) -> None:
        with self._lock:
            self.drop_engine()
            self._gate = None
            if self._library is not None:
                self._library.close()
                self._library = None
            if self._history is not None:
                self._history.close()
                self._history = None


# The settings that choose which library is open (this computer's or a team server's).
LIBRARY_KEYS = ("library_server", "library_token", "library_path_map", "allow_insecure_http")


def _library_keys(s: Settings) -> tuple:
    return tuple(getattr(s, k) for k in LIBRARY_KEYS)
