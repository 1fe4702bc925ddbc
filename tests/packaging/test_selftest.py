"""`confidant --self-test`'s verdict, with fake services (the real run is packaging/ci-smoke.sh)."""

from __future__ import annotations

from pathlib import Path

from app import selftest
from app.config import Settings
from app.core.events import (
    AnswerDone,
    FileDone,
    GenerationStats,
    Hit,
    Source,
    SourcesFound,
    TextPiece,
)
from app.paths import resources_dir
from tests.packaging import REPO


def test_resources_found_from_the_source_tree():
    assert resources_dir() == REPO / "resources"
    text = selftest.sample_path().read_text(encoding="utf-8")
    assert "Brindle Point" in text and "1887" in text


class _Library:
    def __init__(self):
        self.removed = []

    def document(self, path):
        return None

    def remove(self, path):
        self.removed.append(path)
        return True


class _Fake:
    def __init__(self, events):
        self.events = events

    def run(self, paths, cancel):
        yield from self.events

    def ask(self, question, cancel):
        yield from self.events


class _Services:
    def __init__(self, cited_path: str, ingest_status="added"):
        self.home = Path("/tmp/confidant-fake")
        self.library = _Library()
        sample = str(selftest.sample_path().resolve())
        self._ingest = [FileDone(sample, ingest_status, chunks=1, error=None)]
        hit = Hit("c1", cited_path, None, "built in 1887", 0.9)
        sources = (Source(1, hit),)
        stats = GenerationStats(model="fake", completion_tokens=3)
        self._chat = [SourcesFound(sources), TextPiece("1887"), AnswerDone("1887", stats, sources)]

        self.settings = Settings()
        self.model_override = None

    def model_path(self):
        return Path("/models/SmolLM2-135M-Instruct.Q4_1.gguf")

    def ingestor(self):
        return _Fake(self._ingest)

    def chat(self):
        return _Fake(self._chat)


def test_passes_when_the_sample_is_cited(capsys):
    services = _Services(str(selftest.sample_path()))
    assert selftest.run_self_test(services) == 0
    out = capsys.readouterr().out
    assert "self-test: OK" in out
    assert "answer (SmolLM2-135M-Instruct, 3 tokens" in out  # the model as the window names it
    assert services.library.removed == [str(selftest.sample_path().resolve())]


def test_fails_when_another_file_is_cited(capsys):
    assert selftest.run_self_test(_Services("/elsewhere/other.md")) == 1
    assert "does not cite brindle-point.md" in capsys.readouterr().out


def test_fails_when_ingestion_fails(capsys):
    assert selftest.run_self_test(_Services(str(selftest.sample_path()), "failed")) == 1
    assert "could not be ingested" in capsys.readouterr().out
