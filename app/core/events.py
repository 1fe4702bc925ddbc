"""The small dataclasses that flow out of the core to the CLI and the window.

Ingestion yields IngestEvent; a chat answer yields ChatEvent. They are plain data (no Qt, no
callbacks) so that a worker thread can hand them to the GUI thread through a signal unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FileStatus = Literal["added", "unchanged", "replaced", "skipped", "failed", "cancelled"]
Stage = Literal["queued", "reading", "embedding"]


# ----------------------------------------------------------------------------- ingestion
@dataclass(frozen=True)
class IngestStarted:
    """The walk is over: `total` files will be looked at; `interrupted` were left half-done by
    an earlier run that stopped abruptly and are being redone."""

    total: int
    interrupted: tuple[str, ...] = ()
    bytes: int = 0  # the files' sizes summed: the work ahead, for an estimate of time left


@dataclass(frozen=True)
class FileStarted:
    path: str
    index: int  # 0-based position among the files of this run
    total: int
    size: int = 0  # bytes


@dataclass(frozen=True)
class FileProgress:
    path: str
    stage: Stage
    pages: int  # pages read so far
    chunks: int  # chunks embedded so far
    page_total: int = 0  # the document's pages, 0 while not known


@dataclass(frozen=True)
class FileDone:
    """One file's outcome. `error` is a plain-language sentence for skipped and failed files."""

    path: str
    status: FileStatus
    chunks: int = 0
    pages: int = 0
    error: str | None = None


@dataclass(frozen=True)
class IngestFinished:
    counts: dict[str, int]
    seconds: float
    pages: int = 0
    chunks: int = 0
    cancelled: bool = False
    # Seconds the ingesting thread spent per stage: "waiting" (for the reader), "embedding",
    # "storing" (handing batches to the stores), "committing" (versions going live).
    stages: dict[str, float] = field(default_factory=dict)


IngestEvent = IngestStarted | FileStarted | FileProgress | FileDone | IngestFinished


# ----------------------------------------------------------------------------- answers
@dataclass(frozen=True)
class Hit:
    """A retrieved passage. `page` is 1-based, or None for formats without pages."""

    chunk_id: str
    path: str
    page: int | None
    text: str
    score: float
    start: int = 0  # character offsets of the passage inside its page's text
    end: int = 0
    doc_id: int = 0
    chunk_index: int = 0


@dataclass(frozen=True)
class Source:
    """A hit as shown to the model and the user, numbered [n]."""

    n: int
    hit: Hit


@dataclass(frozen=True)
class GenerationStats:
    model: str
    load_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0
    gpu_layers: int = 0
    stop_reason: Literal["eog", "length", "cancelled", "no_sources", "not_answerable"] = "eog"


@dataclass(frozen=True)
class SourcesFound:
    """The passages the answer will be drawn from. `answerable` False: the relevance gate found
    that the library does not answer the question; `sources` are then only the closest
    passages, to be shown collapsed and labelled as not matching, never as citations."""

    sources: tuple[Source, ...]
    answerable: bool = True


@dataclass(frozen=True)
class CitationCheck:
    """One sentence of an answer that cites sources, checked against the passages it cites.

    `start`/`end` are character offsets of the sentence in the answer text. `cited` are the
    source numbers it carries ([n]); `unsupported` those whose passage does not back it.
    `support` maps each supporting source number to the sentences of its passage that back the
    claim (the viewer highlights them more strongly)."""

    start: int
    end: int
    cited: tuple[int, ...]
    unsupported: tuple[int, ...] = ()
    support: dict[int, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerStage:
    """What the answer is waiting for, before its first word: "searching" the library,
    "loading" the model, "reading" `passages` passages (the model's prompt: on a busy CPU that
    can take most of a minute)."""

    stage: Literal["searching", "loading", "reading"]
    passages: int = 0
    done: int = 0  # while reading: prompt tokens evaluated, of `total` (0: not reported)
    total: int = 0


@dataclass(frozen=True)
class TextPiece:
    text: str


@dataclass(frozen=True)
class AnswerDone:
    answer: str
    stats: GenerationStats
    sources: tuple[Source, ...] = field(default=())
    checks: tuple[CitationCheck, ...] = field(default=())


@dataclass(frozen=True)
class AnswerFailed:
    message: str


ChatEvent = AnswerStage | SourcesFound | TextPiece | AnswerDone | AnswerFailed
