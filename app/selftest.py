"""`confidant --self-test`: prove an installation works end to end, offline.

Ingests the sample document shipped in resources/sample/, asks a question only that document
answers, with the configured (by default the embedded) model, and checks that the answer cites
the sample. The embedded 135M model answers poorly, so the check is on the sources, not on the
wording. Exit 0 when cited, 1 otherwise, with one plain sentence saying what failed.

The sample is removed from the library afterwards unless it was there before, so running the
self-test against a user's real data directory leaves their library as it was.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from app.paths import resources_dir

SAMPLE_NAME = "brindle-point.md"
QUESTION = "When was the lighthouse on Brindle Point built?"
EXIT_OK, EXIT_FAILED = 0, 1


def sample_path() -> Path:
    """The shipped sample document (inside the bundle when frozen)."""
    return resources_dir() / "sample" / SAMPLE_NAME


def _same_file(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


def _say(line: str) -> None:
    print(line, flush=True)


def _fail(message: str) -> int:
    _say(f"self-test: FAILED: {message}")
    return EXIT_FAILED


def run_self_test(services) -> int:
    """Ingest the sample, ask about it, check the sources cite it. Returns the exit code."""
    from app.core.cancel import CancelToken
    from app.core.events import AnswerDone, AnswerFailed, FileDone, SourcesFound, TextPiece

    sample = sample_path()
    _say(f"self-test: data directory {services.home}")
    if not sample.is_file():
        return _fail(f"the sample document is missing ({sample}); reinstall Confidant.")
    key = str(sample.resolve())
    was_there = services.library.document(key) is not None

    # 1. Ingest.
    started = time.perf_counter()
    outcome: FileDone | None = None
    try:
        for event in services.ingestor().run([sample], CancelToken()):
            if isinstance(event, FileDone) and _same_file(event.path, sample):
                outcome = event
    except Exception as exc:
        return _fail(f"ingesting the sample raised {type(exc).__name__}: {exc}")
    if outcome is None or outcome.status not in ("added", "unchanged", "replaced"):
        why = (outcome.error or outcome.status) if outcome else "no result for the file"
        return _fail(f"the sample document could not be ingested ({why}).")
    _say(
        f"self-test: ingest: {outcome.status}, {outcome.chunks} chunks "
        f"in {time.perf_counter() - started:.1f} s ({sample.name})"
    )

    # 2. Ask, with the configured model.
    started = time.perf_counter()
    sources: tuple = ()
    done: AnswerDone | None = None
    pieces: list[str] = []
    try:
        for event in services.chat().ask(QUESTION, CancelToken()):
            if isinstance(event, SourcesFound):
                sources = event.sources
            elif isinstance(event, TextPiece):
                pieces.append(event.text)
            elif isinstance(event, AnswerFailed):
                return _fail(f"asking about the sample failed: {event.message}")
            elif isinstance(event, AnswerDone):
                done = event
                sources = event.sources or sources
    except Exception as exc:
        return _fail(f"asking about the sample raised {type(exc).__name__}: {exc}")
    finally:
        if not was_there:
            try:
                services.library.remove(key)
            except Exception as exc:  # a leftover sample is harmless; say so, do not fail
                print(f"self-test: note: the sample stays in the library ({exc})", file=sys.stderr)
    if done is None:
        return _fail("the model produced no answer.")
    answer = " ".join("".join(pieces).split()) or "(empty)"
    stats = done.stats
    _say(f"self-test: question: {QUESTION}")
    model = _model_name(services, stats.model)
    _say(
        f"self-test: answer ({model}, {stats.completion_tokens} tokens, "
        f"{time.perf_counter() - started:.1f} s, "
        f"{'CPU' if not stats.gpu_layers else f'{stats.gpu_layers} GPU layers'}): "
        f"{answer[:200]}"
    )
    cited = [s for s in sources if _same_file(s.hit.path, sample)]
    for s in sources:
        _say(f"self-test: source [{s.n}] {Path(s.hit.path).name} (score {s.hit.score:.2f})")
    if not cited:
        return _fail(
            f"the answer does not cite {sample.name} "
            f"({len(sources)} sources found); retrieval is broken."
        )
    if not stats.completion_tokens:
        return _fail(f"the model generated no tokens (stopped: {stats.stop_reason}).")
    _say("self-test: OK: the sample was ingested, retrieved and cited.")
    return EXIT_OK


def _model_name(services, reported: str | None) -> str:
    """The model as the window names it (its file's name without the quantization), or what a
    team's model server reported."""
    from app.core.model_names import display_name

    if services.settings.llm_server and not services.model_override:
        return reported or "the team's model server"
    try:
        return display_name(services.model_path(), reported or "") or "no model"
    except Exception:  # no model configured: the answer above would have failed first
        return reported or "no model"
